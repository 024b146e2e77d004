"""Times, durations, sizes and values written the way a person reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'just now', '5 minutes ago', 'yesterday', or the date for anything older than a week."""
    if moment is None:
        return "never"
    now = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (now - moment).total_seconds()
    if seconds < 45:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = round(seconds / size)
            if unit == "day" and count == 1:
                return "yesterday"
            if unit == "day" and count > 7:
                return moment.astimezone(UTC).strftime("%d %b %Y")
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def when(moment: datetime | None) -> str:
    """A time as '21 Nov 2026, 14:05 UTC'."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%d %b %Y, %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """'0.4 s', '12 s', '3 min 5 s', '2 h 10 min'; '—' when unknown."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds >= 0.05 else f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def as_json(value: Any) -> str:
    """A value as indented JSON text, for showing or editing."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def cost(usd: float | None) -> str:
    if not usd:
        return "$0"
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"
