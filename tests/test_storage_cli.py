"""`flowloom db upgrade|prune` and `flowloom credentials rotate-key`, on the settings' database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import structlog
from cryptography.fernet import Fernet

from engine.settings import get_settings
from storage import Database
from storage.encryption import KEY_FILE_NAME
from studio.cli import main

T = TypeVar("T")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """FLOWLOOM_DATA_DIR for `main`, with settings and logging restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for name in ("FLOWLOOM_DATABASE_URL", "FLOWLOOM_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def in_database(
    data_dir: Path, work: Callable[[Database], Awaitable[T]], secret_key: str | None = None
) -> T:
    """Do `work` on the data dir's database, as the studio would, and close it."""

    async def run() -> T:
        url = f"sqlite+aiosqlite:///{data_dir / 'flowloom.db'}"
        db = await Database.open(url, data_dir=data_dir, secret_key=secret_key)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def test_db_upgrade_migrates_once_then_reports_up_to_date(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    first = capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    second = capsys.readouterr().out

    assert "Migrated the database from an empty one to" in first
    assert "up to date" in second
    assert (data_dir / "flowloom.db").exists()


def test_db_prune_prints_its_report(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_database(data_dir, lambda db: db.flows.create({"name": "x"}))

    assert main(["db", "prune", "--days", "7", "--max-runs", "5"]) == 0

    out = capsys.readouterr().out
    assert "Deleted 0 runs and 0 steps (kept: 7 days, at most 5 runs per flow)" in out
    assert "The database went from" in out


def test_rotate_key_generates_a_key_into_the_key_file_and_never_prints_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_database(data_dir, lambda db: db.credentials.put("openai", "openai", {"api_key": "sk-1"}))
    old_key = (data_dir / KEY_FILE_NAME).read_text()

    assert main(["credentials", "rotate-key"]) == 0

    out = capsys.readouterr().out
    new_key = (data_dir / KEY_FILE_NAME).read_text()
    assert new_key != old_key
    assert "Re-encrypted 1 credential with the new key." in out
    assert new_key.strip() not in out
    assert in_database(data_dir, lambda db: db.credentials.get_credential("openai")) == {
        "api_key": "sk-1"
    }


def a_credential_under_an_old_passphrase(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credential "a" stored under the key "old passphrase", which FLOWLOOM_SECRET_KEY holds."""
    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", "old passphrase")
    get_settings.cache_clear()
    in_database(
        data_dir, lambda db: db.credentials.put("a", "header", {"value": "v"}), "old passphrase"
    )


def test_a_new_key_starting_with_a_dash_is_taken_as_the_keys_value(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # One generated Fernet key in 64 starts with "-"; argparse would read it as an option.
    a_credential_under_an_old_passphrase(data_dir, monkeypatch)
    new_key = "-" + Fernet.generate_key().decode()[1:]

    assert main(["credentials", "rotate-key", "--new-key", new_key]) == 0
    assert "Set FLOWLOOM_SECRET_KEY to the new key" in capsys.readouterr().out
    assert in_database(data_dir, lambda db: db.credentials.get_credential("a"), new_key) == {
        "value": "v"
    }


def test_rotate_key_with_the_key_in_the_environment_needs_the_new_key_given(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a_credential_under_an_old_passphrase(data_dir, monkeypatch)

    assert main(["credentials", "rotate-key"]) == 2
    assert "--new-key" in capsys.readouterr().err

    new_key = Fernet.generate_key().decode()
    assert main(["credentials", "rotate-key", "--new-key", new_key]) == 0
    out = capsys.readouterr().out
    assert "Set FLOWLOOM_SECRET_KEY to the new key" in out
    assert new_key not in out
    assert in_database(data_dir, lambda db: db.credentials.get_credential("a"), new_key) == {
        "value": "v"
    }
    assert not (data_dir / KEY_FILE_NAME).exists()


def test_an_unreachable_database_is_a_usage_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()

    assert main(["db", "upgrade"]) == 2

    assert "Cannot use the database at postgresql+asyncpg://nobody@127.0.0.1:1/none" in (
        capsys.readouterr().err
    )
