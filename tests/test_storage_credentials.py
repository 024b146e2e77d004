"""Credentials are encrypted at rest and never leave storage except through get_credential."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from storage import Database, NotFound, StorageError
from storage.encryption import KEY_FILE_NAME, NEXT_KEY_FILE_NAME, write_key_file

SECRET = "sk-live-4f9a8b7c6d5e-never-on-disk"


async def test_a_credential_round_trips(db: Database) -> None:
    info = await db.credentials.put("openai", "openai", {"api_key": SECRET, "org": "acme"})

    assert await db.credentials.get_credential("openai") == {"api_key": SECRET, "org": "acme"}
    assert (info.name, info.type, info.fields) == ("openai", "openai", ["api_key", "org"])


async def test_putting_again_replaces_the_fields_and_keeps_created_at(db: Database) -> None:
    first = await db.credentials.put("hook", "header", {"value": "one"})

    second = await db.credentials.put("hook", "hmac", {"secret": "two"})

    assert await db.credentials.get_credential("hook") == {"secret": "two"}
    assert (second.type, second.fields) == ("hmac", ["secret"])
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert len(await db.credentials.list()) == 1


async def test_what_the_api_sees_never_holds_a_secret(db: Database) -> None:
    await db.credentials.put("openai", "openai", {"api_key": SECRET})
    await db.credentials.put("anthropic", "anthropic", {"api_key": "sk-ant-" + SECRET})

    listed = await db.credentials.list()
    described = await db.credentials.info("openai")

    assert [c.name for c in listed] == ["anthropic", "openai"]
    for info in [*listed, described]:
        assert SECRET not in repr(info)
        assert info.fields == ["api_key"]


async def test_missing_credentials(db: Database) -> None:
    with pytest.raises(KeyError):
        await db.credentials.get_credential("nope")
    with pytest.raises(NotFound):
        await db.credentials.info("nope")
    with pytest.raises(NotFound):
        await db.credentials.delete("nope")

    await db.credentials.put("gone", "header", {"value": "x"})
    await db.credentials.delete("gone")
    with pytest.raises(KeyError):
        await db.credentials.get_credential("gone")


async def test_fields_must_be_text(db: Database) -> None:
    with pytest.raises(ValueError, match="text"):
        await db.credentials.put("bad", "header", {"value": 1})  # type: ignore[dict-item]


async def test_the_secret_is_in_no_file_of_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = f"sqlite+aiosqlite:///{data_dir / 'flowloom.db'}"
    db = await Database.open(url, data_dir=data_dir)
    await db.credentials.put("openai", "openai", {"api_key": SECRET})
    await db.credentials.put("openai", "openai", {"api_key": SECRET + "-2"})
    assert await db.credentials.get_credential("openai") == {"api_key": SECRET + "-2"}

    while_open = {path.name: path.read_bytes() for path in data_dir.rglob("*") if path.is_file()}
    await db.close()
    after_close = {path.name: path.read_bytes() for path in data_dir.rglob("*") if path.is_file()}

    assert {"flowloom.db", "flowloom.db-wal", "flowloom.db-shm", KEY_FILE_NAME} <= set(while_open)
    for name, content in [*while_open.items(), *after_close.items()]:
        assert SECRET.encode() not in content, name


async def test_secrets_are_not_logged(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # SQL and parameters
        try:
            await db.credentials.put("openai", "openai", {"api_key": SECRET})
            await db.credentials.get_credential("openai")
        finally:
            logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)

    assert "credentials" in caplog.text  # the SQL was logged...
    assert SECRET not in caplog.text  # ...but not the secret


async def test_the_generated_key_file_is_private(db: Database, tmp_path: Path) -> None:
    key_file = tmp_path / "data" / KEY_FILE_NAME

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes().strip())  # a valid key


async def test_a_passphrase_or_a_fernet_key_can_be_the_secret_key(
    database_url: str, tmp_path: Path
) -> None:
    for secret_key in ("correct horse battery staple", Fernet.generate_key().decode()):
        db = await Database.open(database_url, data_dir=tmp_path, secret_key=secret_key)
        await db.credentials.put("c", "header", {"value": SECRET})
        await db.close()

        again = await Database.open(database_url, data_dir=tmp_path, secret_key=secret_key)
        assert await again.credentials.get_credential("c") == {"value": SECRET}
        await again.close()

        wrong = await Database.open(database_url, data_dir=tmp_path, secret_key="another key")
        with pytest.raises(StorageError, match="cannot be decrypted"):
            await wrong.credentials.get_credential("c")
        await wrong.close()
    assert not (tmp_path / KEY_FILE_NAME).exists()  # a given key is never written down


async def test_rotating_the_key_reencrypts_every_credential(
    database_url: str, tmp_path: Path
) -> None:
    db = await Database.open(database_url, secret_key="old passphrase")
    await db.credentials.put("a", "header", {"value": "alpha"})
    await db.credentials.put("b", "header", {"value": "beta"})

    count = await db.credentials.rotate_key("new passphrase")

    assert count == 2
    assert await db.credentials.get_credential("a") == {"value": "alpha"}
    await db.close()
    old = await Database.open(database_url, secret_key="old passphrase")
    with pytest.raises(StorageError, match="cannot be decrypted"):
        await old.credentials.get_credential("a")
    await old.close()
    new = await Database.open(database_url, secret_key="new passphrase")
    assert await new.credentials.get_credential("b") == {"value": "beta"}
    await new.close()


async def test_rotating_a_key_kept_in_the_data_dir_rewrites_the_file(
    database_url: str, tmp_path: Path
) -> None:
    db = await Database.open(database_url, data_dir=tmp_path)
    await db.credentials.put("a", "header", {"value": "alpha"})
    old_key = (tmp_path / KEY_FILE_NAME).read_bytes()
    new_key = Fernet.generate_key()

    assert await db.credentials.rotate_key(new_key.decode()) == 1
    await db.close()

    assert (tmp_path / KEY_FILE_NAME).read_bytes().strip() == new_key
    assert old_key.strip() != new_key
    assert stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode) == 0o600
    assert not (tmp_path / NEXT_KEY_FILE_NAME).exists()
    reopened = await Database.open(database_url, data_dir=tmp_path)
    assert await reopened.credentials.get_credential("a") == {"value": "alpha"}
    await reopened.close()


async def test_a_rotation_cut_off_before_its_commit_keeps_the_old_key(
    database_url: str, tmp_path: Path
) -> None:
    db = await Database.open(database_url, data_dir=tmp_path)
    await db.credentials.put("a", "header", {"value": "alpha"})
    await db.close()
    old_key = (tmp_path / KEY_FILE_NAME).read_bytes()
    # the process died after writing the next key, before re-encrypting
    write_key_file(tmp_path / NEXT_KEY_FILE_NAME, Fernet.generate_key(), replace=True)

    reopened = await Database.open(database_url, data_dir=tmp_path)

    assert await reopened.credentials.get_credential("a") == {"value": "alpha"}
    await reopened.close()
    assert (tmp_path / KEY_FILE_NAME).read_bytes() == old_key
    assert not (tmp_path / NEXT_KEY_FILE_NAME).exists()


async def test_without_a_key_or_a_data_dir_credentials_cannot_be_stored(
    postgres_url: str,
) -> None:
    db = await Database.open(postgres_url)
    try:
        with pytest.raises(StorageError, match="FLOWLOOM_SECRET_KEY"):
            await db.credentials.put("a", "header", {"value": "alpha"})
        assert await db.credentials.list() == []
    finally:
        await db.close()


async def test_a_rotation_cut_off_after_its_commit_finishes_at_the_next_start(
    database_url: str, tmp_path: Path
) -> None:
    db = await Database.open(database_url, data_dir=tmp_path)
    await db.credentials.put("a", "header", {"value": "alpha"})
    old_key = (tmp_path / KEY_FILE_NAME).read_bytes()
    new_key = Fernet.generate_key()
    await db.credentials.rotate_key(new_key.decode())
    await db.close()
    # as if the process died after the commit, before renaming the new key into place
    write_key_file(tmp_path / NEXT_KEY_FILE_NAME, new_key, replace=True)
    write_key_file(tmp_path / KEY_FILE_NAME, old_key.strip(), replace=True)

    reopened = await Database.open(database_url, data_dir=tmp_path)

    assert await reopened.credentials.get_credential("a") == {"value": "alpha"}
    await reopened.close()
    assert (tmp_path / KEY_FILE_NAME).read_bytes().strip() == new_key
    assert not (tmp_path / NEXT_KEY_FILE_NAME).exists()


async def test_a_damaged_key_file_is_reported_plainly(database_url: str, tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("not a key")

    with pytest.raises(StorageError, match="does not hold a valid key"):
        await Database.open(database_url, data_dir=tmp_path)
