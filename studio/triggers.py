"""When schedule triggers fire next (APScheduler's triggers do the cron arithmetic).

Days are read as cron reads them: when both the day of month and the day of week are set
("0 9 1,15 * mon"), a day matching either fires (APScheduler alone wants both).

On the night clocks go back, the hour before the change comes twice. As cron itself does, a
schedule with a fixed hour ("30 2 * * *") fires once then, in the first pass; one whose hour
is a wildcard ("*/30 * * * *") keeps its rhythm through both passes. On the night clocks go
forward, a time in the skipped hour fires right after it (APScheduler's rule).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

#: How many times `next_after` asks before it gives up (it never needed a second time yet).
MAX_STEPS = 100
_TICK = timedelta(microseconds=1)


class WallClockCron(CronTrigger):
    """A cron trigger that fires a fixed-hour schedule once in an hour the clock repeats."""

    fixed_hour = False

    @classmethod
    def of(cls, expression: str, timezone: ZoneInfo) -> BaseTrigger:
        """The trigger of a 5-field cron expression (an `EitherDay` when both days are set)."""
        minute, hour, day, month, weekday = expression.split()
        if not day.startswith("*") and not weekday.startswith("*"):
            return EitherDay(
                cls.of(f"{minute} {hour} {day} {month} *", timezone),
                cls.of(f"{minute} {hour} * {month} {weekday}", timezone),
            )
        trigger = cls.from_crontab(expression, timezone=timezone)
        trigger.fixed_hour = not hour.startswith("*")
        return trigger

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        if fire is not None and self.fixed_hour and _second_pass(fire):
            fire = super().get_next_fire_time(None, _next_second(fire))  # the next day's
        return fire


class EitherDay(BaseTrigger):
    """A cron with both a day of month and a day of week: it fires on days matching either."""

    def __init__(self, *triggers: BaseTrigger) -> None:
        self.triggers = triggers

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        times = [t.get_next_fire_time(previous_fire_time, now) for t in self.triggers]
        found = [fire for fire in times if fire is not None]
        return min(found) if found else None


def _second_pass(moment: datetime) -> bool:
    """Whether `moment`'s wall-clock time came once already that night (clocks went back)."""
    local = moment.replace(tzinfo=None)
    zone = moment.tzinfo
    first, second = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return False  # not a repeated time
    return moment.astimezone(UTC) == second.astimezone(UTC)


def schedule_trigger(config: dict[str, Any], document: dict[str, Any]) -> BaseTrigger:
    """The APScheduler trigger for a `trigger.schedule` config (cron or every_s)."""
    timezone = ZoneInfo(
        config.get("timezone") or document.get("settings", {}).get("timezone") or "UTC"
    )
    if config.get("cron"):
        return WallClockCron.of(config["cron"], timezone)
    return IntervalTrigger(seconds=float(config["every_s"]), timezone=timezone)


def next_after(trigger: BaseTrigger, moment: datetime) -> datetime | None:
    """The trigger's first fire time strictly after `moment`, in UTC.

    Asked without a previous fire time, from the next whole second for a cron: given a
    previous fire time, or a fraction of a second past one, APScheduler's cron arithmetic can
    land on the same time again, or an earlier one, on the night clocks go back.
    """
    start = moment
    cron = not isinstance(trigger, IntervalTrigger)
    for _ in range(MAX_STEPS):
        start = _next_second(start) if cron else start + _TICK
        fire = trigger.get_next_fire_time(None, start)
        if fire is None or fire > moment:
            return fire.astimezone(UTC) if fire is not None else None
        start = max(start, fire.astimezone(UTC))
    raise ValueError(f"the schedule's next fire time after {moment.isoformat()} was not found")


def _next_second(moment: datetime) -> datetime:
    """The first whole second after `moment` (cron times are whole minutes), in UTC: local
    time arithmetic would lose which pass of a repeated hour `moment` is in."""
    return moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)


def next_fire_times(
    config: dict[str, Any], document: dict[str, Any], count: int, now: datetime | None = None
) -> list[datetime]:
    """The next `count` times a schedule fires after `now` (UTC); fewer if it stops firing."""
    trigger = schedule_trigger(config, document)
    moment = now or datetime.now(UTC)
    times: list[datetime] = []
    while len(times) < count and (fire := next_after(trigger, moment)) is not None:
        times.append(fire)
        moment = fire
    return times
