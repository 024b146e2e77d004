"""Settings come from FLOWLOOM_* variables; logs carry the bound run context and no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from engine.logs import MASK, configure_logging, is_secret_key
from engine.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def fresh_settings_and_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_environment_variables_override_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWLOOM_HOST", "0.0.0.0")
    monkeypatch.setenv("FLOWLOOM_PORT", "9191")
    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", "s3cret-key")
    monkeypatch.setenv("FLOWLOOM_LOG_JSON", "true")
    monkeypatch.setenv("FLOWLOOM_LOG_LEVEL", "debug")

    settings = get_settings()

    assert settings.data_dir == tmp_path
    assert settings.host == "0.0.0.0"
    assert settings.port == 9191
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "s3cret-key"
    assert "s3cret-key" not in repr(settings)
    assert settings.log_json is True
    assert settings.log_level == "DEBUG"
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path}/flowloom.db"


def test_database_url_wins_over_the_sqlite_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", "postgresql+asyncpg://flowloom@localhost/flowloom")

    assert get_settings().effective_database_url == (
        "postgresql+asyncpg://flowloom@localhost/flowloom"
    )


def test_defaults_listen_on_loopback_with_sqlite_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DATA_DIR", "DATABASE_URL", "HOST", "PORT", "SECRET_KEY", "LOG_JSON"):
        monkeypatch.delenv(f"FLOWLOOM_{name}", raising=False)

    settings = Settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.secret_key is None
    assert settings.data_dir.name == "flowloom"
    assert settings.effective_database_url.endswith("/flowloom/flowloom.db")


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLOOM_PORT", "9001")
    first = get_settings()
    monkeypatch.setenv("FLOWLOOM_PORT", "9002")

    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().port == 9002


def test_json_logs_carry_bound_run_flow_and_node_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_json=True))
    log = structlog.get_logger("test")

    with structlog.contextvars.bound_contextvars(run_id="r-1", flow_id="f-1", node_id="n-1"):
        log.info("step finished", attempts=2)
        logging.getLogger("flowloom.tests.stdlib").warning("from the standard library")

    first, second = json_lines(capsys.readouterr().err)
    assert first["event"] == "step finished"
    assert first["level"] == "info"
    assert first["attempts"] == 2
    assert "timestamp" in first
    for line in (first, second):
        assert (line["run_id"], line["flow_id"], line["node_id"]) == ("r-1", "f-1", "n-1")
    assert second["event"] == "from the standard library"


def test_lines_below_the_configured_level_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_json=True, log_level="WARNING"))
    log = structlog.get_logger("test")

    log.debug("not shown")
    log.info("not shown either")
    log.warning("shown")

    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["shown"]


def test_console_logs_are_readable_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_json=False))

    with structlog.contextvars.bound_contextvars(run_id="r-7"):
        structlog.get_logger("test").info("run started")

    line = capsys.readouterr().err
    assert "run started" in line
    assert "run_id=r-7" in line


def test_secret_values_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_json=True))

    structlog.get_logger("test").info(
        "calling provider",
        api_key="sk-live-123",
        password=SecretStr("hunter2"),
        webhook_token="tok-456",
        headers={"Authorization": "Bearer abc", "X-Api-Key": "k-789", "Accept": "json"},
        input_tokens=12,
        model="gpt-4o-mini",
    )

    text = capsys.readouterr().err
    for secret in ("sk-live-123", "hunter2", "tok-456", "Bearer abc", "k-789"):
        assert secret not in text
    (line,) = json_lines(text)
    assert line["api_key"] == MASK
    assert line["webhook_token"] == MASK
    assert line["headers"] == {"Authorization": MASK, "X-Api-Key": MASK, "Accept": "json"}
    assert line["input_tokens"] == 12
    assert line["model"] == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("secret", True),
        ("client_secret", True),
        ("api_key", True),
        ("apikey", True),
        ("X-Api-Key", True),
        ("password", True),
        ("token", True),
        ("access_token", True),
        ("Authorization", True),
        ("input_tokens", False),
        ("max_tokens", False),
        ("model", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret
