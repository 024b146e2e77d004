"""FlowLoom's settings, read once from `FLOWLOOM_*` environment variables.

    from engine.settings import get_settings

    settings = get_settings()
    settings.effective_database_url   # 'sqlite+aiosqlite:////home/ada/.local/share/flowloom/flowloom.db'

Each field's docstring documents its environment variable (`data_dir` ← `FLOWLOOM_DATA_DIR`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("flowloom"))


class Settings(BaseSettings):
    """Everything FlowLoom reads from its environment; one instance per process."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWLOOM_",
        use_attribute_docstrings=True,
        extra="ignore",
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    """`FLOWLOOM_DATA_DIR`: where FlowLoom keeps its database and generated secret key
    (default: the platform's user data directory, e.g. `~/.local/share/flowloom`)."""

    database_url: str | None = None
    """`FLOWLOOM_DATABASE_URL`: an SQLAlchemy async URL such as
    `postgresql+asyncpg://…`; unset means an SQLite file `flowloom.db` in the data dir."""

    secret_key: SecretStr | None = None
    """`FLOWLOOM_SECRET_KEY`: the key that encrypts stored credentials; unset means one is
    generated once and kept in the data dir."""

    host: str = "127.0.0.1"
    """`FLOWLOOM_HOST`: the address the studio and webhooks listen on."""

    api_token: SecretStr | None = None
    """`FLOWLOOM_API_TOKEN`: when set, every REST API call (and `/metrics`) must send
    `Authorization: Bearer <token>`; unset, only calls from this machine are answered.
    Webhooks, health checks and the API's description (`/docs`) are open either way."""

    port: int = Field(default=8080, ge=1, le=65535)
    """`FLOWLOOM_PORT`: the port the studio and webhooks listen on."""

    log_json: bool = False
    """`FLOWLOOM_LOG_JSON`: `true` writes one JSON object per log line (for log collectors)
    instead of readable text."""

    log_level: LogLevel = "INFO"
    """`FLOWLOOM_LOG_LEVEL`: the lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL."""

    retention_days: int = Field(default=30, ge=1)
    """`FLOWLOOM_RETENTION_DAYS`: finished runs older than this many days are pruned (a
    flow's own retention setting overrides it)."""

    retention_max_runs: int = Field(default=1000, ge=1)
    """`FLOWLOOM_RETENTION_MAX_RUNS`: at most this many runs are kept per flow, the newest
    (a flow's own retention setting overrides it)."""

    max_payload_bytes: int = Field(default=256 * 1024, ge=2048)
    """`FLOWLOOM_MAX_PAYLOAD_BYTES`: a step's input or output larger than this (as JSON) is
    stored as a short preview marked `_truncated` instead."""

    schedule_grace_s: float = Field(default=60.0, ge=0)
    """`FLOWLOOM_SCHEDULE_GRACE_S`: a schedule firing missed while FlowLoom was stopped still
    runs (once) when FlowLoom starts within this many seconds of it; older ones are skipped."""

    heartbeat_s: float = Field(default=10.0, gt=0)
    """`FLOWLOOM_HEARTBEAT_S`: how often this process tells others sharing its database that
    it is alive; a process of the same machine that is gone (killed) has its unfinished runs
    taken over by a live one within about this long, one elsewhere after six times this."""

    sync_s: float = Field(default=1.0, gt=0)
    """`FLOWLOOM_SYNC_S`: how often this process looks for what other processes sharing its
    database (the studio beside `flowloom serve`, say) changed: flows saved, activated,
    deactivated or deleted (their webhooks and schedules follow within about this long), event
    subscriptions added or deleted, and requests to cancel runs this process executes."""

    webhook_rate_per_s: float = Field(default=100.0, gt=0)
    """`FLOWLOOM_WEBHOOK_RATE_PER_S`: calls per second each webhook URL accepts on average;
    calls beyond it get 429 with Retry-After."""

    webhook_burst: int = Field(default=200, ge=1)
    """`FLOWLOOM_WEBHOOK_BURST`: calls each webhook URL accepts at once above its rate."""

    webhook_idempotency_ttl_s: float = Field(default=86_400.0, gt=0)
    """`FLOWLOOM_WEBHOOK_IDEMPOTENCY_TTL_S`: how long a webhook delivery's Idempotency-Key
    (or sender's delivery id) is remembered, so a repeat starts no second run (24 h)."""

    delivery_attempts: int = Field(default=5, ge=1, le=20)
    """`FLOWLOOM_DELIVERY_ATTEMPTS`: how many times an outgoing event webhook is tried."""

    delivery_backoff_s: float = Field(default=2.0, gt=0)
    """`FLOWLOOM_DELIVERY_BACKOFF_S`: the wait before an event webhook's 2nd attempt; each
    later attempt waits twice as long as the one before."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def effective_database_url(self) -> str:
        """The database URL to connect to: `database_url`, else the SQLite file in `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'flowloom.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first call.

    Tests that change `FLOWLOOM_*` variables call `get_settings.cache_clear()` afterwards.
    """
    return Settings()


__all__ = ["LogLevel", "Settings", "get_settings"]
