"""JSON text for the database's JSON columns: fast, and never failing on odd values.

Steps hand over whatever their nodes produced. `dumps` writes JSON values as they are and
makes anything JSON cannot hold readable text instead of failing the batch it is in:
datetimes as ISO 8601, bytes as UTF-8 text, keys as text, NaN and infinities as "nan" /
"inf", anything else as its str().

orjson does the common case several times faster than the standard library; the rare values
it cannot take as we want (NaN, non-text keys, lone surrogates, integers over 64 bits) go the
careful way, through `readable`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import orjson


class JSONText(str):
    """A value already serialized to JSON text; written as it is."""


def dumps(value: Any) -> str:
    """Compact JSON text for `value`, UTF-8 text as is (see the module docstring)."""
    try:
        data = orjson.dumps(value, default=_fallback, option=orjson.OPT_PASSTHROUGH_DATACLASS)
    except TypeError:  # orjson.JSONEncodeError: non-text keys, surrogates, huge integers
        return _careful(value)
    # orjson writes NaN and infinities as null; only then may a null in the text be one.
    # (find, not `in`: `bytes in bytes` first tries the operand as an integer, and fails.)
    if data.find(b"null") != -1:
        try:
            return json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_fallback
            )
        except ValueError:
            return _careful(value)
    return data.decode()


def readable(value: Any) -> Any:
    """`value` with anything JSON cannot hold made readable (text), recursively."""
    if value is None or type(value) in (str, int, bool):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): readable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [readable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _fallback(value: Any) -> Any:
    """What orjson (or json) is given for a value it cannot write itself."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _careful(value: Any) -> str:
    plain = readable(value)
    text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (e.g. from a "\ud800" in a webhook body)
        return json.dumps(plain, separators=(",", ":"))
    return text
