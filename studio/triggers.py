"""When schedule triggers fire next (APScheduler's triggers do the cron arithmetic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger


def schedule_trigger(config: dict[str, Any], document: dict[str, Any]) -> BaseTrigger:
    """The APScheduler trigger for a `trigger.schedule` config (cron or every_s)."""
    timezone = ZoneInfo(
        config.get("timezone") or document.get("settings", {}).get("timezone") or "UTC"
    )
    if config.get("cron"):
        return CronTrigger.from_crontab(config["cron"], timezone=timezone)
    return IntervalTrigger(seconds=float(config["every_s"]), timezone=timezone)


def next_fire_times(
    config: dict[str, Any], document: dict[str, Any], count: int, now: datetime | None = None
) -> list[datetime]:
    """The next `count` times a schedule fires after `now` (UTC); fewer if it stops firing."""
    trigger = schedule_trigger(config, document)
    previous: datetime | None = None
    moment = now or datetime.now(UTC)
    times: list[datetime] = []
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        times.append(fire.astimezone(UTC))
        previous, moment = fire, fire + timedelta(microseconds=1)
    return times
