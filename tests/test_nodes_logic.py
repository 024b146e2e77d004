"""logic.condition, logic.switch, logic.merge and logic.loop, run inside real flows."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from engine import run_flow, validate
from tests.documents import flow, manual, step


def records(result: Any, node_id: str) -> list[Any]:
    return [s for s in result.steps if s.node_id == node_id]


def status_of(result: Any, node_id: str) -> str:
    return str(records(result, node_id)[-1].status)


def errors(document: dict[str, Any]) -> list[Any]:
    return [p for p in validate(document) if p.level == "error"]


def mark(node_id: str, verdict: str, parent: str | None = None) -> dict[str, Any]:
    return step(node_id, "data.set", {"values": {"verdict": verdict}}, parent=parent)


# -- logic.condition -----------------------------------------------------------------------------


def if_else(expression: str) -> dict[str, Any]:
    return flow(
        [
            manual(),
            step("check", "logic.condition", {"expression": expression}),
            mark("yes", "yes"),
            mark("no", "no"),
        ],
        [("start", "check"), ("check", "true", "yes"), ("check", "false", "no")],
    )


@pytest.mark.parametrize(("score", "taken", "skipped"), [(0.9, "yes", "no"), (0.1, "no", "yes")])
async def test_condition_sends_the_input_down_the_path_it_chose(
    score: float, taken: str, skipped: str
) -> None:
    result = await run_flow(if_else("input.score > 0.5"), {"score": score})

    assert result.status == "succeeded"
    assert result.output == {"score": score, "verdict": taken}
    check = records(result, "check")[0]
    assert (check.port, check.output) == ("true" if taken == "yes" else "false", {"score": score})
    assert status_of(result, skipped) == "skipped"


@pytest.mark.parametrize(("given", "taken"), [([], "no"), ([0], "yes"), ("", "no"), ("x", "yes")])
async def test_condition_follows_truthiness_of_the_expression(given: Any, taken: str) -> None:
    result = await run_flow(if_else("input.value"), {"value": given})

    assert result.output["verdict"] == taken


def test_condition_with_an_expression_that_does_not_parse_is_a_problem_of_that_field() -> None:
    problems = errors(if_else("input.score >"))

    assert [(p.node_id, p.field) for p in problems] == [("check", "expression")]


def test_condition_offers_only_the_true_false_and_error_ports() -> None:
    document = if_else("input.ok")
    document["edges"].append({"source": "check", "source_port": "maybe", "target": "no"})

    problems = errors(document)

    assert len(problems) == 1
    assert "'maybe'" in problems[0].message


# -- logic.switch --------------------------------------------------------------------------------


def triage(default: str = "other") -> dict[str, Any]:
    return flow(
        [
            manual(),
            step(
                "route",
                "logic.switch",
                {
                    "cases": [
                        {"port": "big", "expression": "input.n > 10"},
                        {"port": "medium", "expression": "input.n > 5"},
                    ],
                    "default": default,
                },
            ),
            mark("b", "big"),
            mark("m", "medium"),
            mark("o", "other"),
        ],
        [
            ("start", "route"),
            ("route", "big", "b"),
            ("route", "medium", "m"),
            ("route", default, "o"),
        ],
    )


@pytest.mark.parametrize(("n", "verdict"), [(20, "big"), (7, "medium"), (1, "other")])
async def test_switch_takes_the_first_matching_case_or_the_default(n: int, verdict: str) -> None:
    result = await run_flow(triage(), {"n": n})

    assert result.status == "succeeded"
    assert result.output == {"n": n, "verdict": verdict}
    assert records(result, "route")[0].port == {"big": "big", "medium": "medium"}.get(
        verdict, "other"
    )
    assert sorted(s.node_id for s in result.steps if s.status == "skipped") == sorted(
        {"b", "m", "o"} - {verdict[0]}
    )


async def test_switch_default_port_is_called_default_unless_named() -> None:
    result = await run_flow(triage(default="default"), {"n": 0})

    assert records(result, "route")[0].port == "default"
    assert result.output == {"n": 0, "verdict": "other"}


@pytest.mark.parametrize(
    ("cases", "default", "words", "field"),
    [
        (
            [{"port": "a", "expression": "true"}, {"port": "a", "expression": "false"}],
            "default",
            "two paths are called 'a'",
            None,
        ),
        ([{"port": "a", "expression": "true"}], "a", "two paths are called 'a'", None),
        ([{"port": "error", "expression": "true"}], "default", "kept for errors", "cases[0].port"),
        ([{"port": "  ", "expression": "true"}], "default", "needs a name", "cases[0].port"),
        ([{"port": "a", "expression": "true"}], "error", "kept for errors", "default"),
        ([], "default", "at least 1", "cases"),
    ],
)
def test_switch_port_names_must_be_unique_non_empty_and_not_error(
    cases: list[dict[str, str]], default: str, words: str, field: str | None
) -> None:
    document = flow(
        [manual(), step("route", "logic.switch", {"cases": cases, "default": default})],
        [("start", "route")],
    )

    problems = errors(document)

    assert [(p.node_id, p.field) for p in problems] == [("route", field)]
    assert words in problems[0].message


def test_switch_case_with_a_bad_expression_names_the_case() -> None:
    document = flow(
        [
            manual(),
            step("route", "logic.switch", {"cases": [{"port": "a", "expression": "input.n >"}]}),
        ],
        [("start", "route")],
    )

    problems = errors(document)

    assert [(p.node_id, p.field) for p in problems] == [("route", "cases[0].expression")]


# -- logic.merge ---------------------------------------------------------------------------------


async def test_merge_all_hands_on_every_delivered_input_by_step_name_skipping_untaken_paths() -> (
    None
):
    document = flow(
        [
            manual(),
            step("check", "logic.condition", {"expression": "input.ok"}),
            step("a", "data.set", {"values": {"from": "a"}, "keep_input": False}, name="Path A"),
            step("b", "data.set", {"values": {"from": "b"}, "keep_input": False}, name="Path B"),
            step("c", "data.set", {"values": {"from": "c"}, "keep_input": False}, name="Side"),
            step("join", "logic.merge", {"mode": "all"}),
        ],
        [
            ("start", "check"),
            ("check", "true", "a"),
            ("check", "false", "b"),
            ("start", "c"),
            ("a", "join"),
            ("b", "join"),
            ("c", "join"),
        ],
    )

    result = await run_flow(document, {"ok": True})

    assert result.status == "succeeded"
    assert result.output == {"Path A": {"from": "a"}, "Side": {"from": "c"}}


async def test_merge_first_goes_on_with_the_first_input_to_arrive() -> None:
    document = flow(
        [
            manual(),
            step("slow", "flow.delay", {"seconds": 0.3}),
            step("fast", "data.set", {"values": {"from": "fast"}, "keep_input": False}),
            step("join", "logic.merge", {"mode": "first"}),
        ],
        [("start", "slow"), ("start", "fast"), ("slow", "join"), ("fast", "join")],
    )

    result = await run_flow(document, {"from": "slow"})

    assert result.status == "succeeded"
    joins = records(result, "join")
    assert joins[0].output == {"from": "fast"}
    assert len(joins) == 1


def test_merge_mode_is_all_or_first() -> None:
    document = flow([manual(), step("join", "logic.merge", {"mode": "any"})], [("start", "join")])

    problems = errors(document)

    assert [(p.node_id, p.field) for p in problems] == [("join", "mode")]


# -- logic.loop ----------------------------------------------------------------------------------


def loop_over(items: Any, body: list[dict[str, Any]], concurrency: int = 4) -> dict[str, Any]:
    body_ids = [n["id"] for n in body]
    return flow(
        [manual(), step("each", "logic.loop", {"items": items, "concurrency": concurrency}), *body],
        [("start", "each"), *itertools.pairwise(body_ids)],
    )


async def test_loop_runs_its_body_per_item_and_collects_results_in_item_order() -> None:
    body = [
        # Later items finish first, so the order of results cannot come from finishing order.
        step("wait", "flow.delay", {"seconds": "{{ (5 - input) * 0.03 }}"}, parent="each"),
        step("times_ten", "data.set", {"values": {"value": "{{ input * 10 }}"}}, parent="each"),
    ]

    result = await run_flow(loop_over("{{ input.items }}", body), {"items": [1, 2, 3, 4, 5]})

    assert result.status == "succeeded"
    assert result.output == {"items": [{"value": v} for v in (10, 20, 30, 40, 50)]}


async def test_loop_body_sees_its_place_in_the_loop_as_jinja_names_it() -> None:
    template = "{{ loop.index }}/{{ loop.length }} ({{ loop.index0 }}{{ ', first' if loop.first }}{{ ', last' if loop.last }}): {{ input }}"
    body = [step("label", "data.template", {"template": template}, parent="each")]

    result = await run_flow(loop_over("{{ input }}", body), ["a", "b", "c"])

    assert result.output == {
        "items": [
            {"text": "1/3 (0, first): a"},
            {"text": "2/3 (1): b"},
            {"text": "3/3 (2, last): c"},
        ]
    }


async def test_loop_over_an_empty_list_outputs_no_results() -> None:
    body = [step("times_ten", "data.set", {"values": {"v": 1}}, parent="each")]

    result = await run_flow(loop_over("{{ input.items }}", body), {"items": []})

    assert result.status == "succeeded"
    assert result.output == {"items": []}


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_loop_works_on_at_most_concurrency_items_at_once(concurrency: int) -> None:
    body = [step("wait", "flow.delay", {"seconds": 0.15}, parent="each")]

    result = await run_flow(loop_over(list(range(6)), body, concurrency), None)

    assert result.status == "succeeded"
    assert result.output == {"items": list(range(6))}
    waits = records(result, "wait")
    assert len(waits) == 6
    most_at_once = max(
        sum(1 for w in waits if w.started_at <= moment.started_at < w.finished_at)
        for moment in waits
    )
    assert most_at_once == concurrency


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ("abc", "text ('abc')"),
        ({"a": 1}, "an object"),
        (None, "nothing (null)"),
        (5, "a number (5)"),
    ],
)
async def test_loop_over_something_that_is_not_a_list_fails_saying_what_it_got(
    items: Any, words: str
) -> None:
    body = [step("noop", "data.set", {"values": {"v": 1}}, parent="each")]

    result = await run_flow(loop_over("{{ input.items }}", body), {"items": items})

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["node_id"] == "each"
    assert f"'items' must be a list to loop over, but it is {words}." in result.error["message"]


@pytest.mark.parametrize("concurrency", [0, 65])
def test_loop_concurrency_is_between_1_and_64(concurrency: int) -> None:
    body = [step("noop", "data.set", {"values": {"v": 1}}, parent="each")]

    problems = errors(loop_over([1], body, concurrency))

    assert [(p.node_id, p.field) for p in problems] == [("each", "concurrency")]
