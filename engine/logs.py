"""FlowLoom's one logging setup: structlog to stderr, readable in a terminal, JSON for collectors.

    configure_logging(get_settings())
    structlog.contextvars.bind_contextvars(run_id=run.id, flow_id=flow.id)
    log.info("step finished", node_id="classify")   # every line carries run_id and flow_id

Records of standard-library loggers that reach the root logger (uvicorn's, with the studio's
`log_config=None`; alembic's; httpx's) go through the same processors, so stderr has one format.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from engine.settings import Settings

MASK = "********"

# A key is secret when one of its `_`-separated words is one of these: `api_key`,
# `X-Api-Key` and `client_secret` match, `input_tokens` does not.
_SECRET_KEY = re.compile(
    r"(?:^|_)(?:secret|api_?key|password|passwd|token|authorization|auth_token)(?:_|$)"
)


def is_secret_key(key: object) -> bool:
    """True when a log field of this name must never be written out."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key.lower().replace("-", "_")))


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Mapping):
        return {k: MASK if is_secret_key(k) else _masked(v) for k, v in value.items()}
    return value


def mask_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace the values of secret-looking keys (also inside dicts such as headers)."""
    for key, value in event_dict.items():
        if is_secret_key(key):
            event_dict[key] = MASK
        elif isinstance(value, SecretStr | Mapping):
            event_dict[key] = _masked(value)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
    ]


def _renderer(settings: Settings) -> Processor:
    if settings.log_json:
        return structlog.processors.JSONRenderer(default=str)
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


LOG_FILE_BYTES = 10 * 2**20
LOG_FILE_BACKUPS = 5


def configure_logging(settings: Settings, *, log_file: Path | None = None) -> None:
    """Set up structlog and the standard-library root logger from `settings`.

    Lines go to stderr (readable, or JSON with `FLOWLOOM_LOG_JSON=1`) and, with `log_file`,
    also as JSON lines to that file, rotated at 10 MiB with 5 old files kept. Calls below
    `settings.log_level` return at once; safe to call again (the last call wins).
    """
    level = logging.getLevelNamesMapping()[settings.log_level]
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    handlers: list[logging.Handler] = [
        _handler(logging.StreamHandler(sys.stderr), _renderer(settings), settings.log_json)
    ]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
        handlers.append(_handler(rotating, structlog.processors.JSONRenderer(default=str), True))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    # Libraries that narrate routine work at INFO: keep their warnings and errors only.
    for chatty in ("alembic", "httpx", "httpcore", "apscheduler"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


def _handler(handler: logging.Handler, renderer: Processor, as_json: bool) -> logging.Handler:
    exceptions: list[Processor] = [structlog.processors.dict_tracebacks] if as_json else []
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared_processors()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *exceptions,
                renderer,
            ],
        )
    )
    return handler


__all__ = ["MASK", "configure_logging", "is_secret_key", "mask_secrets"]
