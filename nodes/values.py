"""Plain-words views of values, shared by the node families (text forms, kinds in messages)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator


def as_text(value: Any) -> str:
    """A value as text: strings as they are, nothing as '', everything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # a circular structure
        return str(value)


def describe_value(value: Any) -> str:
    """What kind of value this is, in plain words, for error messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a true/false value ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"text ('{shown}')"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _scalar_as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


#: A text field that also takes a number or true/false (a header such as `Retry-After: 30`).
ScalarText = Annotated[str, BeforeValidator(_scalar_as_text)]
