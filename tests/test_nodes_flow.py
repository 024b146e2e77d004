"""flow.delay, flow.respond and flow.subflow, run inside real flows."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from engine import run_flow, validate
from tests.documents import chain, manual, step


def errors(document: dict[str, Any]) -> list[Any]:
    return [p for p in validate(document) if p.level == "error"]


# -- flow.delay ----------------------------------------------------------------------------------


async def test_delay_waits_then_passes_its_input_on_unchanged() -> None:
    document = chain(manual(), step("wait", "flow.delay", {"seconds": 0.2}))

    started = time.monotonic()
    result = await run_flow(document, {"a": [1, 2]})

    assert time.monotonic() - started >= 0.2
    assert result.status == "succeeded"
    assert result.output == {"a": [1, 2]}


async def test_delay_seconds_may_come_from_a_template() -> None:
    document = chain(manual(), step("wait", "flow.delay", {"seconds": "{{ input.pause }}"}))

    result = await run_flow(document, {"pause": 0})

    assert result.status == "succeeded"
    assert result.output == {"pause": 0}


@pytest.mark.parametrize("seconds", [-1, 86_401])
def test_delay_is_between_zero_seconds_and_one_day(seconds: float) -> None:
    problems = errors(chain(manual(), step("wait", "flow.delay", {"seconds": seconds})))

    assert [(p.node_id, p.field) for p in problems] == [("wait", "seconds")]


# -- flow.respond --------------------------------------------------------------------------------


async def test_respond_sets_the_webhook_answer_and_passes_its_input_on() -> None:
    document = chain(
        manual(),
        step(
            "answer",
            "flow.respond",
            {
                "status": 201,
                "body": {"created": "{{ input.id }}"},
                "headers": {"X-Id": "{{ input.id }}", "Retry-After": 30},
            },
        ),
    )

    result = await run_flow(document, {"id": 7})

    assert result.status == "succeeded"
    assert result.output == {"id": 7}
    assert result.response == {
        "status": 201,
        "body": {"created": 7},
        "headers": {"X-Id": "7", "Retry-After": "30"},
    }


async def test_respond_answers_with_its_input_when_no_body_is_given() -> None:
    document = chain(manual(), step("answer", "flow.respond"))

    result = await run_flow(document, {"id": 7})

    assert result.response is not None
    assert (result.response["status"], result.response["body"]) == (200, {"id": 7})


async def test_respond_with_an_explicit_null_body_answers_with_no_body() -> None:
    document = chain(manual(), step("answer", "flow.respond", {"status": 204, "body": None}))

    result = await run_flow(document, {"id": 7})

    assert result.response is not None
    assert (result.response["status"], result.response["body"]) == (204, None)


async def test_a_flow_without_respond_has_no_response() -> None:
    result = await run_flow(chain(manual()), {"id": 7})

    assert result.response is None


@pytest.mark.parametrize("status", [99, 101, 199, 600])  # 1xx are not final answers
def test_respond_status_is_an_http_status_code(status: int) -> None:
    problems = errors(chain(manual(), step("answer", "flow.respond", {"status": status})))

    assert [(p.node_id, p.field) for p in problems] == [("answer", "status")]


# -- flow.subflow --------------------------------------------------------------------------------


def greeter() -> dict[str, Any]:
    return chain(manual(), step("greet", "data.template", {"template": "Hello {{ input.name }}"}))


async def test_subflow_runs_an_inline_flow_with_this_steps_input() -> None:
    document = chain(manual(), step("sub", "flow.subflow", {"flow": greeter()}))

    result = await run_flow(document, {"name": "Ada"})

    assert result.status == "succeeded"
    assert result.output == {"text": "Hello Ada"}


async def test_subflow_inline_templates_are_rendered_in_the_subflows_own_scope() -> None:
    document = chain(
        manual(),
        step("sub", "flow.subflow", {"flow": greeter(), "input": {"name": "{{ input.child }}"}}),
    )

    result = await run_flow(document, {"name": "Parent", "child": "Ada"})

    assert result.status == "succeeded"
    assert result.output == {"text": "Hello Ada"}


async def test_subflow_with_an_explicit_null_input_starts_the_other_flow_with_null() -> None:
    inner = chain(manual(), step("show", "data.template", {"template": "got {{ input }}"}))
    document = chain(manual(), step("sub", "flow.subflow", {"flow": inner, "input": None}))

    result = await run_flow(document, {"name": "Ada"})

    assert result.output == {"text": "got None"}


async def test_a_failing_subflow_fails_the_step_that_ran_it() -> None:
    inner = chain(manual(), step("each", "logic.loop", {"items": "{{ input }}"}))
    document = chain(manual(), step("sub", "flow.subflow", {"flow": inner}))

    result = await run_flow(document, "not a list")

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["node_id"] == "sub"
    assert "must be a list" in result.error["message"]


class FlowLibrary:
    """A FlowLoader over a dict of documents by name, as storage would provide."""

    def __init__(self, **documents: dict[str, Any]) -> None:
        self.documents = documents
        self.asked: list[str] = []

    async def load_flow(self, ref: str) -> Mapping[str, Any]:
        self.asked.append(ref)
        return self.documents[ref]


async def test_subflow_runs_a_flow_found_by_name() -> None:
    library = FlowLibrary(Greeter=greeter())
    document = chain(manual(), step("sub", "flow.subflow", {"flow": "Greeter"}))

    result = await run_flow(document, {"name": "Ada"}, loader=library)

    assert result.status == "succeeded"
    assert result.output == {"text": "Hello Ada"}
    assert library.asked == ["Greeter"]


async def test_subflow_name_may_come_from_a_template() -> None:
    library = FlowLibrary(Greeter=greeter())
    document = chain(manual(), step("sub", "flow.subflow", {"flow": "{{ input.which }}"}))

    result = await run_flow(document, {"which": "Greeter", "name": "Ada"}, loader=library)

    assert result.output == {"text": "Hello Ada"}
    assert library.asked == ["Greeter"]


def test_subflow_needs_a_flow() -> None:
    problems = errors(chain(manual(), step("sub", "flow.subflow", {"flow": ""})))

    assert [(p.node_id, p.field) for p in problems] == [("sub", "flow")]
