"""data.set and data.template, run inside real flows."""

from __future__ import annotations

from typing import Any

import pytest

from engine import run_flow, validate
from tests.documents import chain, manual, step


def output_of(result: Any, node_id: str) -> Any:
    return next(s.output for s in result.steps if s.node_id == node_id)


async def test_set_adds_values_to_the_input_and_keeps_the_rest() -> None:
    document = chain(manual(), step("set", "data.set", {"values": {"status": "open", "n": 2}}))

    result = await run_flow(document, {"id": 7, "status": "new"})

    assert result.status == "succeeded"
    assert result.output == {"id": 7, "status": "open", "n": 2}


async def test_set_without_keep_input_outputs_only_the_values() -> None:
    document = chain(
        manual(), step("set", "data.set", {"values": {"status": "open"}, "keep_input": False})
    )

    result = await run_flow(document, {"id": 7})

    assert result.output == {"status": "open"}


async def test_set_values_may_be_templates_that_keep_their_native_type() -> None:
    document = chain(
        manual(),
        step(
            "set",
            "data.set",
            {
                "values": {
                    "count": "{{ input.count + 1 }}",
                    "tags": "{{ input.tags }}",
                    "greeting": "Hello {{ input.name }}",
                }
            },
        ),
    )

    result = await run_flow(document, {"count": 1, "tags": ["a"], "name": "Ada"})

    assert result.output == {
        "count": 2,
        "tags": ["a"],
        "name": "Ada",
        "greeting": "Hello Ada",
    }


async def test_set_dotted_names_set_nested_values_without_changing_the_upstream_output() -> None:
    document = chain(
        manual(),
        step(
            "set",
            "data.set",
            {"values": {"customer.email": "ada@example.com", "meta.source.kind": "form"}},
        ),
    )
    given = {"customer": {"name": "Ada"}, "meta": None}

    result = await run_flow(document, given)

    assert result.output == {
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "meta": {"source": {"kind": "form"}},
    }
    assert output_of(result, "start") == {"customer": {"name": "Ada"}, "meta": None}


@pytest.mark.parametrize("given", [["a", "b"], "text", 3, None])
async def test_set_on_an_input_that_is_not_an_object_outputs_only_the_values(given: Any) -> None:
    document = chain(manual(), step("set", "data.set", {"values": {"a": 1}}))

    result = await run_flow(document, given)

    assert result.output == {"a": 1}


async def test_set_through_a_value_that_is_not_an_object_fails_in_plain_words() -> None:
    document = chain(manual(), step("set", "data.set", {"values": {"count.total": 1}}))

    result = await run_flow(document, {"count": 3})

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["node_id"] == "set"
    assert (
        "Cannot set 'count.total': 'count' holds a number (3), not an object."
        in (result.error["message"])
    )


@pytest.mark.parametrize("name", ["", "a..b", ".a", "a."])
def test_set_with_an_unusable_name_is_a_problem(name: str) -> None:
    document = chain(manual(), step("set", "data.set", {"values": {name: 1}}))

    problems = [p for p in validate(document) if p.level == "error"]

    assert [(p.node_id, p.field) for p in problems] == [("set", "values")]
    assert "not a usable name" in problems[0].message


def test_set_needs_values() -> None:
    problems = validate(chain(manual(), step("set", "data.set", {})))

    assert [(p.node_id, p.field) for p in problems if p.level == "error"] == [("set", "values")]


async def test_template_renders_text_from_the_input() -> None:
    document = chain(
        manual(),
        step(
            "greet",
            "data.template",
            {"template": "Hello {{ input.name }}, you have {{ input.n }} new"},
        ),
    )

    result = await run_flow(document, {"name": "Ada", "n": 3})

    assert result.output == {"text": "Hello Ada, you have 3 new"}


@pytest.mark.parametrize(
    ("given", "text"),
    [(3, "3"), ({"a": [1, "b"]}, '{"a": [1, "b"]}'), (None, ""), (True, "true")],
)
async def test_template_that_is_one_expression_still_outputs_text(given: Any, text: str) -> None:
    document = chain(manual(), step("show", "data.template", {"template": "{{ input.value }}"}))

    result = await run_flow(document, {"value": given})

    assert result.status == "succeeded"
    assert result.output == {"text": text}
