"""Triggers: the steps a run starts from. Each hands on the payload the run was started with."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from engine.node import NodeConfig, NodeType, StepContext

# (name, lowest, highest, names allowed in place of numbers) for each of cron's five fields.
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_ITEM = re.compile(r"^(?:\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")
TEN_MIB = 10 * 1024 * 1024


class ManualTrigger(NodeType):
    type = "trigger.manual"
    title = "Start manually"
    icon = "play_arrow"
    category = "Triggers"
    description = "Starts the flow when you press Run, with the input you give it."
    is_trigger = True

    class Config(NodeConfig):
        pass

    async def run(self, ctx: StepContext, config: Config) -> Any:
        return ctx.input


class HeaderAuth(NodeConfig):
    """The caller must send a header whose value equals a stored credential's `value`."""

    type: Literal["header"] = Field(description="Check a secret header sent by the caller.")
    name: str = Field(
        min_length=1,
        pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$",
        description="The header the caller sends the secret in, for example X-Token.",
    )
    credential: str = Field(
        min_length=1,
        description="The stored credential whose value the header must equal.",
    )


class HmacAuth(NodeConfig):
    """The caller signs the raw body with a shared secret, the way the named sender does."""

    type: Literal["hmac"] = Field(description="Check the request's signature.")
    preset: Literal["github", "stripe", "slack", "generic"] = Field(
        description=(
            "Which sender's signing scheme to check: GitHub, Stripe, Slack, or a generic "
            "HMAC-SHA256 of the body."
        )
    )
    credential: str = Field(
        min_length=1,
        description="The stored credential whose secret signs the requests.",
    )


WebhookAuth = Annotated[HeaderAuth | HmacAuth, Field(discriminator="type")]


class WebhookTrigger(NodeType):
    type = "trigger.webhook"
    title = "Webhook"
    icon = "webhook"
    category = "Triggers"
    description = "Starts the flow when another service calls this flow's web address."
    is_trigger = True

    class Config(NodeConfig):
        response: Literal["sync", "async"] = Field(
            default="sync",
            description=(
                "sync: the caller waits for the flow's answer; async: the caller gets a run id "
                "at once and the flow runs in the background."
            ),
        )
        timeout_s: float = Field(
            default=30,
            gt=0,
            le=3600,
            description="How many seconds a waiting caller gets its answer within (sync only).",
        )
        auth: WebhookAuth | None = Field(
            default=None,
            description="How callers prove who they are; leave empty to accept every call.",
        )
        max_body_bytes: int = Field(
            default=TEN_MIB,
            gt=0,
            description="The largest request body accepted, in bytes (10 MiB by default).",
        )
        allowed_origins: str = Field(
            default="*",
            description=(
                "Web pages allowed to call this webhook from a browser (a form on your site): "
                "'*' for any, a comma-separated list such as 'https://example.com', or empty "
                "for none. Other services' calls are not affected."
            ),
        )

    async def run(self, ctx: StepContext, config: Config) -> Any:
        return ctx.input


class ScheduleTrigger(NodeType):
    type = "trigger.schedule"
    title = "Schedule"
    icon = "schedule"
    category = "Triggers"
    description = "Starts the flow on a timetable: a cron schedule or every so many seconds."
    is_trigger = True

    class Config(NodeConfig):
        cron: str | None = Field(
            default=None,
            description=(
                "A cron schedule of five fields: minute, hour, day of month, month, day of week "
                "(for example '*/5 * * * *' for every five minutes). Use this or 'every_s'."
            ),
        )
        every_s: float | None = Field(
            default=None,
            gt=0,
            le=366 * 86_400,
            description=(
                "Run every so many seconds, at most a year (366 days). Use this or 'cron'."
            ),
        )
        timezone: str | None = Field(
            default=None,
            description=(
                "The time zone the cron schedule is read in, for example Europe/Paris; "
                "the flow's time zone when empty."
            ),
        )

        @field_validator("cron")
        @classmethod
        def _five_fields(cls, cron: str | None) -> str | None:
            if cron is None:
                return None
            fields = cron.split()
            if len(fields) != len(CRON_FIELDS):
                names = ", ".join(name for name, *_ in CRON_FIELDS)
                raise ValueError(
                    f"A cron schedule has 5 fields ({names}), but '{cron}' has {len(fields)}."
                )
            for text, spec in zip(fields, CRON_FIELDS, strict=True):
                _check_cron_field(text, *spec)
            _check_some_date_matches(fields)
            return " ".join(fields)

        @field_validator("timezone")
        @classmethod
        def _known_timezone(cls, timezone: str | None) -> str | None:
            if timezone is None:
                return None
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"Unknown time zone '{timezone}'; use a name such as UTC or Europe/Paris."
                ) from None
            return timezone

        @model_validator(mode="after")
        def _exactly_one_timing(self) -> ScheduleTrigger.Config:
            if (self.cron is None) == (self.every_s is None):
                raise ValueError(
                    "A schedule needs exactly one of 'cron' (a cron schedule) or "
                    "'every_s' (seconds between runs)."
                )
            return self

    async def run(self, ctx: StepContext, config: Config) -> Any:
        return ctx.input


def _check_some_date_matches(fields: list[str]) -> None:
    """Raise ValueError when a day of month never falls in the schedule's months (30 February):
    such a schedule would never fire. (With a day of week set too, that day fires instead.)"""
    day, month, weekday = fields[2], fields[3], fields[4]
    if day.startswith("*") or month == "*" or not weekday.startswith("*"):
        return
    from apscheduler.triggers.cron import CronTrigger  # only such schedules need it

    # from the start of a leap year: 29 February counts
    trigger = CronTrigger.from_crontab(" ".join(fields), timezone=UTC)
    if trigger.get_next_fire_time(None, datetime(2028, 1, 1, tzinfo=UTC)) is None:
        raise ValueError(
            f"No date matches this schedule: day '{day}' never falls in month '{month}' "
            "(February has no 30th, April no 31st), so it would never run."
        )


def _check_cron_field(
    text: str, name: str, lowest: int, highest: int, names: tuple[str, ...]
) -> None:
    """Raise ValueError in plain words when one cron field cannot be read."""
    for item in text.lower().split(","):
        match = _CRON_ITEM.match(item)
        if not match:
            raise ValueError(
                f"The {name} field '{text}' is not a cron field such as *, 5, 1-5 or */10."
            )
        start, end, step = match.groups()
        for value in (start, end):
            if value is None or value in names:
                continue
            if not value.isdigit() or not lowest <= int(value) <= highest:
                also = f" or names such as {names[0]}" if names else ""
                raise ValueError(
                    f"The {name} field '{text}' must use numbers from {lowest} to {highest}{also}."
                )
        if step is not None and int(step) == 0:
            raise ValueError(f"The {name} field '{text}' has a step of 0; use 1 or more.")
