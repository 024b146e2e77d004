"""When schedules fire next, across the nights clocks change: a fixed-hour schedule fires
once when an hour repeats (as cron does), a wildcard-hour one keeps its rhythm through both
passes, a time in a skipped hour fires right after it, and no answer ever goes backwards."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from studio.triggers import next_after, next_fire_times, schedule_trigger

PARIS = ZoneInfo("Europe/Paris")  # clocks go back 2026-10-25 03:00 → 02:00, on 03-29 forward
NEW_YORK = ZoneInfo("America/New_York")  # clocks go back 2026-11-01 02:00 → 01:00


def local_times(cron: str, zone: ZoneInfo, start: datetime, count: int) -> list[str]:
    config = {"cron": cron, "timezone": zone.key}
    times = next_fire_times(config, {}, count, now=start)
    return [t.astimezone(zone).strftime("%m-%d %H:%M%z") for t in times]


def test_a_fixed_hour_fires_once_on_the_night_clocks_go_back() -> None:
    paris = local_times("30 2 * * *", PARIS, datetime(2026, 10, 24, 12, tzinfo=UTC), 3)
    new_york = local_times("30 1 * * *", NEW_YORK, datetime(2026, 10, 31, 12, tzinfo=UTC), 3)
    hours = local_times("15 1-3 * * *", PARIS, datetime(2026, 10, 24, 22, tzinfo=UTC), 4)

    assert paris == ["10-25 02:30+0200", "10-26 02:30+0100", "10-27 02:30+0100"]
    assert new_york == ["11-01 01:30-0400", "11-02 01:30-0500", "11-03 01:30-0500"]
    assert hours == ["10-25 01:15+0200", "10-25 02:15+0200", "10-25 03:15+0100", "10-26 01:15+0100"]


def test_a_wildcard_hour_keeps_its_rhythm_through_both_passes() -> None:
    times = local_times("*/30 * * * *", PARIS, datetime(2026, 10, 24, 23, 45, tzinfo=UTC), 5)

    assert times == [
        "10-25 02:00+0200",
        "10-25 02:30+0200",
        "10-25 02:00+0100",
        "10-25 02:30+0100",
        "10-25 03:00+0100",
    ]


def test_a_time_in_the_skipped_hour_fires_right_after_it() -> None:
    times = local_times("30 2 * * *", PARIS, datetime(2026, 3, 28, 12, tzinfo=UTC), 2)

    assert times == ["03-29 03:30+0200", "03-30 02:30+0200"]


@pytest.mark.parametrize("cron", ["30 2 * * *", "*/30 * * * *", "0 */1 * * *", "15 1-3 * * *"])
def test_next_fire_times_only_go_forward_across_the_change(cron: str) -> None:
    trigger = schedule_trigger({"cron": cron, "timezone": "Europe/Paris"}, {})
    moment = datetime(2026, 10, 24, 20, tzinfo=UTC)
    seen: list[datetime] = []
    while moment < datetime(2026, 10, 26, tzinfo=UTC):  # APScheduler alone loops here
        fire = next_after(trigger, moment)
        assert fire is not None and fire > moment
        seen.append(fire)
        moment = fire
    assert len(seen) == len(set(seen))
    assert all(b - a >= timedelta(minutes=30) for a, b in itertools.pairwise(seen))


def test_a_day_of_month_and_a_day_of_week_fire_on_either_as_cron_does() -> None:
    # `man 5 crontab`: with both fields set, a day matching either runs the command.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    config = {"cron": "0 9 1,15 * mon"}
    days = [t.strftime("%a %m-%d") for t in next_fire_times(config, {}, 6, now=start)]
    only_dates = next_fire_times({"cron": "0 9 1,15 * *"}, {}, 2, now=start)

    assert days == ["Thu 01-01", "Mon 01-05", "Mon 01-12", "Thu 01-15", "Mon 01-19", "Mon 01-26"]
    assert [t.day for t in only_dates] == [1, 15]
