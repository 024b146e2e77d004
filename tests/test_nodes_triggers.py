"""Trigger node types: start a run and hand on its input; their configs are checked up front."""

from __future__ import annotations

from typing import Any

import pytest

from engine import run_flow, validate
from nodes.triggers import WebhookTrigger
from tests.documents import chain, step


def errors(document: dict[str, Any]) -> list[Any]:
    return [p for p in validate(document) if p.level == "error"]


async def test_manual_trigger_outputs_the_run_input() -> None:
    result = await run_flow(chain(step("start", "trigger.manual")), {"name": "Ada"})

    assert result.status == "succeeded"
    assert result.output == {"name": "Ada"}


async def test_webhook_trigger_outputs_the_request_it_was_started_with() -> None:
    request = {"body": {"text": "hi"}, "headers": {"x-a": "1"}, "query": {}, "method": "POST"}
    document = chain(
        step("hook", "trigger.webhook", {"response": "async"}),
        step("pick", "data.template", {"template": "{{ input.body.text }} via {{ input.method }}"}),
    )

    result = await run_flow(document, request)

    assert result.status == "succeeded"
    assert result.steps[0].output == request
    assert result.output == {"text": "hi via POST"}


def test_webhook_defaults_to_a_sync_answer_within_30_seconds_and_a_10_mib_body() -> None:
    config = WebhookTrigger.Config.model_validate({})

    assert config.model_dump() == {
        "response": "sync",
        "timeout_s": 30,
        "auth": None,
        "max_body_bytes": 10 * 1024 * 1024,
        "allowed_origins": "*",  # web pages may call it from a browser, as in n8n
    }


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "header", "name": "X-Token", "credential": "hook-token"},
        {"type": "hmac", "preset": "github", "credential": "gh-secret"},
        {"type": "hmac", "preset": "stripe", "credential": "stripe"},
        {"type": "hmac", "preset": "slack", "credential": "slack"},
        {"type": "hmac", "preset": "generic", "credential": "shared"},
    ],
)
def test_webhook_accepts_header_and_hmac_auth(auth: dict[str, str]) -> None:
    assert errors(chain(step("hook", "trigger.webhook", {"auth": auth}))) == []


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"type": "hmac", "preset": "gitlab", "credential": "x"}, "preset"),
        ({"type": "header", "credential": "x"}, "name"),
        ({"type": "header", "name": "X Token", "credential": "x"}, "name"),
        ({"type": "password", "credential": "x"}, "auth"),
    ],
)
def test_webhook_with_malformed_auth_is_a_problem_of_the_auth_field(
    auth: dict[str, str], field: str
) -> None:
    problems = errors(chain(step("hook", "trigger.webhook", {"auth": auth})))

    assert len(problems) >= 1
    assert problems[0].node_id == "hook"
    assert problems[0].field is not None and problems[0].field.startswith("auth")
    assert field in problems[0].field


async def test_schedule_trigger_outputs_the_firing_it_was_started_with() -> None:
    document = chain(step("tick", "trigger.schedule", {"cron": "*/5 * * * *", "timezone": "UTC"}))

    result = await run_flow(document, {"fired_at": "2025-01-01T00:05:00+00:00"})

    assert result.status == "succeeded"
    assert result.output == {"fired_at": "2025-01-01T00:05:00+00:00"}


@pytest.mark.parametrize(
    "config",
    [
        {"cron": "0 9 * * 1-5"},
        {"cron": "0 9 * jan-mar mon-fri", "timezone": "Europe/Paris"},
        {"cron": "15,45 */2 1 * *"},
        {"every_s": 60},
        {"every_s": 0.5},
    ],
)
def test_schedule_accepts_a_cron_or_an_interval(config: dict[str, Any]) -> None:
    assert errors(chain(step("tick", "trigger.schedule", config))) == []


@pytest.mark.parametrize(
    "config",
    [{}, {"cron": "* * * * *", "every_s": 60}],
)
def test_schedule_needs_exactly_one_of_cron_or_every_s(config: dict[str, Any]) -> None:
    problems = errors(chain(step("tick", "trigger.schedule", config)))

    assert [p.node_id for p in problems] == ["tick"]
    assert "exactly one of 'cron'" in problems[0].message


def test_schedule_cron_with_the_wrong_number_of_fields_names_the_five_fields() -> None:
    problems = errors(chain(step("tick", "trigger.schedule", {"cron": "*/5 * * *"})))

    assert [(p.node_id, p.field) for p in problems] == [("tick", "cron")]
    assert "5 fields (minute, hour, day of month, month, day of week)" in problems[0].message
    assert "has 4" in problems[0].message


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("61 * * * *", "minute field '61' must use numbers from 0 to 59"),
        ("0 24 * * *", "hour field '24'"),
        ("0 0 0 * *", "day of month field '0'"),
        ("0 0 * 13 *", "month field '13'"),
        ("0 0 * * funday", "day of week field 'funday'"),
        ("*/0 * * * *", "step of 0"),
        ("? * * * *", "not a cron field"),
    ],
)
def test_schedule_cron_with_an_impossible_field_says_which_field(cron: str, words: str) -> None:
    problems = errors(chain(step("tick", "trigger.schedule", {"cron": cron})))

    assert [(p.node_id, p.field) for p in problems] == [("tick", "cron")]
    assert words in problems[0].message


def test_schedule_interval_must_be_positive() -> None:
    problems = errors(chain(step("tick", "trigger.schedule", {"every_s": 0})))

    assert [(p.node_id, p.field) for p in problems] == [("tick", "every_s")]


def test_schedule_with_an_unknown_time_zone_is_a_problem() -> None:
    problems = errors(
        chain(step("tick", "trigger.schedule", {"every_s": 60, "timezone": "Mars/Olympus"}))
    )

    assert [(p.node_id, p.field) for p in problems] == [("tick", "timezone")]
    assert "field 'timezone': unknown time zone 'Mars/Olympus'; use" in problems[0].message


@pytest.mark.parametrize(
    ("cron", "never"),
    [
        ("0 0 30 2 *", True),  # 30 February
        ("0 0 31 4,6,9,11 *", True),  # the 31st of a 30-day month
        ("0 0 29 2 *", False),  # leap years have it
        ("0 0 31 */2 *", False),  # January, March, …
        ("0 0 30 2 mon", False),  # either day: every Monday in February
    ],
)
def test_a_schedule_no_date_matches_is_refused_in_plain_words(cron: str, never: bool) -> None:
    document = chain(
        step("tick", "trigger.schedule", {"cron": cron}), step("s", "data.set", {"values": {}})
    )

    messages = [problem.message for problem in validate(document)]

    if never:
        assert len(messages) == 1
        assert "would never run" in messages[0]
        assert "value error" not in messages[0].lower() and not messages[0].endswith("..")
    else:
        assert messages == []


@pytest.mark.parametrize("every_s", [0, -5, 366 * 86_400 + 1, 1e12])
def test_an_interval_is_more_than_nothing_and_at_most_a_year(every_s: float) -> None:
    # A huge interval overflowed the calendar when the schedule was planned, silently.
    document = chain(step("tick", "trigger.schedule", {"every_s": every_s}))

    problems = validate(document)

    assert [(p.node_id, p.field) for p in problems] == [("tick", "every_s")]
