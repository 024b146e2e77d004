"""The executor's semantics, one test per rule (see "Engine semantics" in the README)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from engine import Engine, Event, EventStream, RunFinished, RunResult, event_to_dict, run_flow
from engine.executor import _backoff
from tests.documents import chain, flow, manual, step
from tests.probe_nodes import JOURNAL, probe_engine


@pytest.fixture
def engine() -> Engine:
    JOURNAL.__init__()  # type: ignore[misc]
    return probe_engine()


def statuses(result: RunResult) -> dict[str, str]:
    return {record.node_id: record.status for record in result.steps}


def record(node_id: str, seconds: float = 0.0, **options: Any) -> dict[str, Any]:
    return step(node_id, "probe.record", {"seconds": seconds} if seconds else {}, **options)


def condition(node_id: str, expression: str) -> dict[str, Any]:
    return step(node_id, "logic.condition", {"expression": expression})


# -- readiness and skipping -------------------------------------------------------------------


async def test_branch_not_taken_is_skipped_and_its_steps_never_run(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            condition("big", "input.n > 10"),
            record("yes"),
            record("no"),
            record("after_no"),
        ],
        [("start", "big"), ("big", "true", "yes"), ("big", "false", "no"), ("no", "after_no")],
    )

    result = await engine.run(document, {"n": 50})

    assert result.status == "succeeded"
    assert statuses(result) == {
        "start": "succeeded",
        "big": "succeeded",
        "yes": "succeeded",
        "no": "skipped",
        "after_no": "skipped",
    }
    assert result.output == {"from": "yes", "input": {"n": 50}}


async def test_step_runs_when_every_input_delivered_or_was_skipped(engine: Engine) -> None:
    document = flow(
        [manual(), condition("big", "input.n > 10"), record("yes"), record("no"), record("join")],
        [
            ("start", "big"),
            ("big", "true", "yes"),
            ("big", "false", "no"),
            ("yes", "join"),
            ("no", "join"),
        ],
    )

    result = await engine.run(document, {"n": 1})

    assert statuses(result)["join"] == "succeeded"
    assert result.output == {"from": "join", "input": {"from": "no", "input": {"n": 1}}}


async def test_step_whose_every_input_was_skipped_is_skipped(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            condition("big", "input.n > 10"),
            record("a"),
            record("b"),
            record("join"),
            record("other"),
        ],
        [
            ("start", "big"),
            ("big", "true", "a"),
            ("big", "true", "b"),
            ("a", "join"),
            ("b", "join"),
            ("big", "false", "other"),
        ],
    )

    result = await engine.run(document, {"n": 1})

    assert statuses(result)["join"] == "skipped"
    assert result.output == {"from": "other", "input": {"n": 1}}


async def test_independent_branches_run_concurrently(engine: Engine) -> None:
    document = flow(
        [manual(), record("a", 0.3), record("b", 0.3), record("c", 0.3)],
        [("start", "a"), ("start", "b"), ("start", "c")],
    )

    result = await engine.run(document)

    assert result.status == "succeeded"
    assert JOURNAL.max_running == 3  # all three were running at the same moment


async def test_several_delivered_inputs_arrive_by_upstream_name(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            step("x", "data.set", {"values": {"v": 1}, "keep_input": False}, name="X"),
            step("y", "data.set", {"values": {"v": 2}, "keep_input": False}, name="Y"),
            record("join"),
        ],
        [("start", "x"), ("start", "y"), ("x", "join"), ("y", "join")],
    )

    result = await engine.run(document)

    assert result.output == {"from": "join", "input": {"X": {"v": 1}, "Y": {"v": 2}}}


async def test_only_the_started_trigger_runs(engine: Engine) -> None:
    document = flow(
        [manual(), step("hook", "trigger.webhook"), record("a"), record("b")],
        [("start", "a"), ("hook", "b")],
    )

    result = await engine.run(document, {"k": 1})

    assert set(statuses(result)) == {"start", "a"}
    hooked = await engine.run(document, {"body": {}}, trigger="hook")
    assert set(statuses(hooked)) == {"hook", "b"}


# -- merge ------------------------------------------------------------------------------------


async def test_merge_all_waits_for_every_live_input(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            record("slow", 0.2, name="Slow"),
            record("fast", name="Fast"),
            step("merge", "logic.merge", {"mode": "all"}),
        ],
        [("start", "slow"), ("start", "fast"), ("slow", "merge"), ("fast", "merge")],
    )

    result = await engine.run(document, 7)

    assert result.output == {
        "Slow": {"from": "slow", "input": 7},
        "Fast": {"from": "fast", "input": 7},
    }


async def test_skipped_branch_does_not_block_merge(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            condition("c", "input > 0"),
            record("pos", name="Positive"),
            record("neg", name="Negative"),
            record("always", name="Always"),
            step("merge", "logic.merge", {"mode": "all"}),
        ],
        [
            ("start", "c"),
            ("c", "true", "pos"),
            ("c", "false", "neg"),
            ("start", "always"),
            ("pos", "merge"),
            ("neg", "merge"),
            ("always", "merge"),
        ],
    )

    result = await engine.run(document, 5)

    assert statuses(result)["merge"] == "succeeded"
    assert set(result.output) == {"Positive", "Always"}


async def test_merge_first_hands_on_the_first_arrival_once(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            record("slow", 0.3, name="Slow"),
            record("fast", 0.01, name="Fast"),
            step("merge", "logic.merge", {"mode": "first"}),
            record("after"),
        ],
        [
            ("start", "slow"),
            ("start", "fast"),
            ("slow", "merge"),
            ("fast", "merge"),
            ("merge", "after"),
        ],
    )

    result = await engine.run(document)

    merges = [r for r in result.steps if r.node_id == "merge"]
    assert len(merges) == 1
    assert merges[0].output == {"from": "fast", "input": None}
    assert [r.node_id for r in result.steps].count("after") == 1
    assert result.step("slow").status == "succeeded"  # the run still waits for every step


# -- loops ------------------------------------------------------------------------------------


async def test_loop_runs_its_body_per_item_and_keeps_item_order(engine: Engine) -> None:
    document = chain(
        manual(),
        step("loop", "logic.loop", {"items": "{{ input.items }}", "concurrency": 3}),
        step(
            "double",
            "data.set",
            {
                "values": {"twice": "{{ input * 2 }}", "index": "{{ loop.index0 }}"},
                "keep_input": False,
            },
            parent="loop",
        ),
        step(
            "label",
            "data.template",
            {"template": "#{{ input.index }}={{ input.twice }}"},
            parent="loop",
        ),
    )
    document["edges"].append({"source": "double", "target": "label"})

    result = await engine.run(document, {"items": [1, 2, 3, 4, 5]})

    assert result.status == "succeeded", result.error
    assert result.output == {"items": [{"text": f"#{i}={(i + 1) * 2}"} for i in range(5)]}
    body = [r for r in result.steps if r.parent == "loop"]
    assert len(body) == 10
    assert sorted({r.item_index for r in body}) == [0, 1, 2, 3, 4]


async def test_loop_respects_its_concurrency_limit(engine: Engine) -> None:
    document = chain(
        manual(),
        step("loop", "logic.loop", {"items": "{{ input }}", "concurrency": 2}),
        record("work", 0.05, parent="loop"),
    )

    started = time.perf_counter()
    result = await engine.run(document, list(range(8)))

    assert result.status == "succeeded"
    assert JOURNAL.max_running == 2
    assert time.perf_counter() - started >= 0.2  # 8 items, 2 at a time, 50 ms each


async def test_failing_item_fails_the_loop_naming_the_item(engine: Engine) -> None:
    document = chain(
        manual(),
        step("loop", "logic.loop", {"items": "{{ input }}"}, name="Each"),
        step("check", "data.set", {"values": {"r": "{{ 10 // input }}"}}, parent="loop"),
    )

    result = await engine.run(document, [1, 2, 0, 4])

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["node_id"] == "loop"
    assert "item 2 failed" in result.error["message"]


async def test_loop_body_and_tools_are_not_sinks(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            step("loop", "logic.loop", {"items": "{{ input }}"}),
            record("inner", parent="loop"),
            step("user", "probe.tool_user", {"args": {"q": 1}}),
            step("tool", "data.set", {"values": {"got": "{{ args.q }}"}, "keep_input": False}),
        ],
        [("start", "loop"), ("loop", "user"), ("user", "tools", "tool")],
    )

    result = await engine.run(document, [1])

    assert result.status == "succeeded", result.error
    assert result.output == {"tool": {"got": 1}}
    assert result.step("tool").parent is None


# -- cycles -----------------------------------------------------------------------------------


async def test_cycle_goes_round_until_its_condition_lets_it_out(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            step(
                "draft",
                "data.set",
                {"values": {"round": "{{ (input.round or 0) + 1 }}"}},
                name="Draft",
            ),
            condition("good", "input.round >= 3"),
            record("publish"),
        ],
        [
            ("start", "draft"),
            ("draft", "good"),
            ("good", "false", "draft"),
            ("good", "true", "publish"),
        ],
    )

    result = await engine.run(document, {})

    assert result.status == "succeeded", result.error
    assert [r.visit for r in result.steps if r.node_id == "draft"] == [1, 2, 3]
    assert result.output == {"from": "publish", "input": {"round": 3}}
    assert [r.status for r in result.steps if r.node_id == "publish"] == ["succeeded"]


async def test_cycle_exit_joins_a_merge_only_when_the_cycle_is_done(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            step(
                "draft",
                "data.set",
                {"values": {"round": "{{ (input.round or 0) + 1 }}"}},
                name="Draft",
            ),
            condition("good", "input.round >= 2"),
            record("side", name="Side"),
            step("merge", "logic.merge", {"mode": "all"}),
        ],
        [
            ("start", "draft"),
            ("draft", "good"),
            ("good", "false", "draft"),
            ("good", "true", "merge"),
            ("start", "side"),
            ("side", "merge"),
        ],
    )

    result = await engine.run(document, {})

    assert [r.status for r in result.steps if r.node_id == "merge"] == ["succeeded"]
    assert result.output["good"] == {"round": 2}
    assert "Side" in result.output


async def test_exceeding_the_visit_limit_fails_the_run_naming_the_node(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            step("spin", "data.set", {"values": {}}, name="Spin", settings={"max_visits": 4}),
            condition("never", "false"),
        ],
        [("start", "spin"), ("spin", "never"), ("never", "false", "spin")],
    )

    result = await engine.run(document, {})

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["node_id"] == "spin"
    assert "'Spin' (spin) ran 4 times" in result.error["message"]


# -- timeouts, retries, errors ----------------------------------------------------------------


async def test_step_timeout_fails_the_step_in_plain_words(engine: Engine) -> None:
    document = chain(manual(), record("slow", 5, settings={"timeout_s": 0.05}))

    started = time.perf_counter()
    result = await engine.run(document)

    assert time.perf_counter() - started < 1
    assert result.status == "failed"
    assert result.error is not None
    assert "longer than 0.05 s" in result.error["message"]


async def test_retries_run_the_step_again_until_it_succeeds(engine: Engine) -> None:
    document = chain(
        manual(),
        step(
            "f",
            "probe.flaky",
            {"key": "retry-ok", "failures": 2},
            settings={"retries": 3, "retry_backoff_s": 0.01},
        ),
    )

    result = await engine.run(document)

    assert result.status == "succeeded"
    assert result.step("f").attempts == 3
    assert result.output == {"calls": 3}


async def test_retries_give_up_after_the_last_attempt(engine: Engine) -> None:
    document = chain(
        manual(),
        step(
            "f",
            "probe.flaky",
            {"key": "retry-out", "failures": 5},
            settings={"retries": 2, "retry_backoff_s": 0.01},
        ),
    )

    result = await engine.run(document)

    assert result.status == "failed"
    assert result.step("f").attempts == 3
    assert "planned failure 3" in result.error["message"]  # type: ignore[index]


def test_backoff_grows_exponentially_with_jitter() -> None:
    for attempt in (1, 2, 3, 4):
        delays = [_backoff(0.5, attempt) for _ in range(200)]
        nominal = 0.5 * 2 ** (attempt - 1)
        assert all(0.5 * nominal <= d <= 1.5 * nominal for d in delays)
        assert len(set(delays)) > 100  # jittered, not fixed


async def test_on_error_continue_hands_the_error_on_as_output(engine: Engine) -> None:
    document = chain(
        manual(), step("boom", "probe.crash", settings={"on_error": "continue"}), record("after")
    )

    result = await engine.run(document, {"x": 1})

    assert result.status == "succeeded"
    assert result.step("boom").status == "failed"
    handed = result.output["input"]
    assert "ZeroDivisionError" in handed["error"]["message"]
    assert handed["input"] == {"x": 1}


async def test_on_error_route_follows_the_error_port(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            step("boom", "probe.crash", settings={"on_error": "route"}),
            record("ok"),
            record("fix"),
        ],
        [("start", "boom"), ("boom", "ok"), ("boom", "error", "fix")],
    )

    result = await engine.run(document)

    assert statuses(result) == {
        "start": "succeeded",
        "boom": "failed",
        "ok": "skipped",
        "fix": "succeeded",
    }
    assert result.status == "succeeded"


async def test_on_error_stop_fails_the_run_and_names_the_step(engine: Engine) -> None:
    document = chain(manual(), step("boom", "probe.crash", name="Divide"), record("after"))

    result = await engine.run(document)

    assert result.status == "failed"
    assert result.error == {
        "message": "Step 'Divide' (boom) failed: ZeroDivisionError: division by zero",
        "node_id": "boom",
        "node_name": "Divide",
        "type": "StepError",
    }
    assert "after" not in statuses(result)
    assert result.output is None


async def test_a_failing_step_stops_its_parallel_siblings(engine: Engine) -> None:
    document = flow(
        [manual(), record("slow", 5), step("boom", "probe.crash")],
        [("start", "slow"), ("start", "boom")],
    )

    started = time.perf_counter()
    result = await engine.run(document)

    assert time.perf_counter() - started < 1
    assert result.status == "failed"
    assert result.step("slow").status == "cancelled"


async def test_run_timeout_stops_the_whole_run(engine: Engine) -> None:
    document = chain(manual(), record("slow", 5))
    document["settings"] = {"timeout_s": 0.1}

    started = time.perf_counter()
    result = await engine.run(document)

    assert time.perf_counter() - started < 1
    assert result.status == "failed"
    assert "longer than 0.1 s" in result.error["message"]  # type: ignore[index]
    assert result.step("slow").status == "cancelled"


async def test_cancel_stops_every_running_step_promptly(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            record("a", 10),
            record("b", 10),
            step("loop", "logic.loop", {"items": "{{ [1, 2, 3] }}"}),
            record("inner", 10, parent="loop"),
        ],
        [("start", "a"), ("start", "b"), ("start", "loop")],
    )
    handle = engine.start(document)
    await asyncio.sleep(0.1)

    started = time.perf_counter()
    handle.cancel()
    result = await handle

    assert time.perf_counter() - started < 2  # the steps would sleep 10 s
    assert result.status == "cancelled"
    assert {r.node_id: r.status for r in result.steps if r.node_id in ("a", "b")} == {
        "a": "cancelled",
        "b": "cancelled",
    }
    assert all(r.status == "cancelled" for r in result.steps if r.node_id == "inner")
    assert JOURNAL.running == 0


async def test_an_outside_cancellation_is_not_swallowed(engine: Engine) -> None:
    task = asyncio.create_task(engine.run(chain(manual(), record("a", 10))))
    await asyncio.sleep(0.05)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


# -- output -----------------------------------------------------------------------------------


async def test_output_of_several_sinks_is_keyed_by_their_names(engine: Engine) -> None:
    document = flow(
        [
            manual(),
            step("a", "data.set", {"values": {"v": 1}, "keep_input": False}, name="Alpha"),
            step("b", "data.set", {"values": {"v": 2}, "keep_input": False}, name="Beta"),
        ],
        [("start", "a"), ("start", "b")],
    )

    result = await engine.run(document)

    assert result.output == {"Alpha": {"v": 1}, "Beta": {"v": 2}}


async def test_respond_sets_the_webhook_answer(engine: Engine) -> None:
    document = chain(
        manual(), step("r", "flow.respond", {"status": 201, "body": {"ok": "{{ input.id }}"}})
    )

    result = await engine.run(document, {"id": 9})

    assert result.response == {"status": 201, "body": {"ok": 9}, "headers": {}}


# -- sub-flows --------------------------------------------------------------------------------


async def test_subflow_runs_an_inline_document(engine: Engine) -> None:
    inner = chain(manual(), step("add", "data.set", {"values": {"n": "{{ input.n + 1 }}"}}))
    document = chain(
        manual(), step("sub", "flow.subflow", {"flow": inner, "input": {"n": "{{ input.n * 10 }}"}})
    )

    result = await engine.run(document, {"n": 2})

    assert result.status == "succeeded", result.error
    assert result.output == {"n": 21}


async def test_subflow_by_name_goes_through_the_engines_loader() -> None:
    inner = chain(manual(), step("hello", "data.template", {"template": "hi {{ input.who }}"}))
    asked = []

    class Library:
        async def load_flow(self, ref: str) -> dict[str, Any]:
            asked.append(ref)
            return inner

    document = chain(manual(), step("sub", "flow.subflow", {"flow": "greeter"}))

    result = await run_flow(document, {"who": "ada"}, loader=Library())

    assert asked == ["greeter"]
    assert result.output == {"text": "hi ada"}


async def test_a_flow_calling_itself_stops_at_the_depth_limit() -> None:
    class Library:
        async def load_flow(self, ref: str) -> dict[str, Any]:
            return chain(manual(), step("again", "flow.subflow", {"flow": "self"}))

    result = await run_flow(
        chain(manual(), step("sub", "flow.subflow", {"flow": "self"})), loader=Library()
    )

    assert result.status == "failed"
    assert "nested more than 8 deep" in result.error["message"]  # type: ignore[index]


# -- events -----------------------------------------------------------------------------------


async def test_events_tell_the_whole_run_in_order(engine: Engine) -> None:
    document = flow(
        [manual(), condition("c", "true"), step("talk", "probe.chatty"), record("no")],
        [("start", "c"), ("c", "true", "talk"), ("c", "false", "no")],
    )
    seen: list[dict[str, Any]] = []

    result = await engine.run(document, on_event=lambda e: seen.append(event_to_dict(e)))

    kinds = [(e["event"], e.get("step", {}).get("node_id") or e.get("node_id")) for e in seen]
    assert kinds == [
        ("run.started", None),
        ("step.started", "start"),
        ("step.finished", "start"),
        ("step.started", "c"),
        ("step.finished", "c"),
        ("step.skipped", "no"),
        ("step.started", "talk"),
        ("log", "talk"),
        ("token", "talk"),
        ("token", "talk"),
        ("step.finished", "talk"),
        ("run.finished", None),
    ]
    assert all(e["run_id"] == result.run_id for e in seen)
    assert "".join(e["text"] for e in seen if e["event"] == "token") == "Hello"
    talk = result.step("talk")
    assert (talk.input_tokens, talk.output_tokens, talk.cost_usd, talk.model) == (
        3,
        2,
        0.5,
        "probe-1",
    )
    assert talk.logs[0]["message"] == "thinking"


async def test_run_finished_names_each_step_that_recorded_model_usage_once(
    engine: Engine,
) -> None:
    document = chain(
        manual(),
        step("talk", "probe.chatty", {"calls": 3}),
        record("quiet"),
        step("again", "probe.chatty"),
    )
    seen: list[Event] = []

    result = await engine.run(document, on_event=seen.append)

    finished = seen[-1]
    assert isinstance(finished, RunFinished)
    assert [used.node_id for used in finished.usage_steps] == ["talk", "again"]
    assert finished.usage_steps[0] is result.step("talk")
    assert result.step("talk").input_tokens == 9
    assert "usage_steps" not in event_to_dict(finished)


async def test_a_resumed_run_reports_only_the_steps_it_ran_and_their_model_usage(
    engine: Engine,
) -> None:
    document = chain(
        manual(),
        step("talk", "probe.chatty"),
        step("f", "probe.flaky", {"key": "resume-usage", "failures": 1}),
    )
    first = await engine.run(document)
    assert first.status == "failed"
    seen: list[Event] = []

    again = await engine.run(document, resume=first.steps, on_event=seen.append)

    finished = seen[-1]
    assert again.status == "succeeded"
    assert isinstance(finished, RunFinished)
    # talk's tokens were counted when it ran the first time; it is restored now, not run
    assert [record.node_id for record in again.steps] == ["start", "talk", "f"]
    assert [record.node_id for record in finished.steps] == ["f"]
    assert list(finished.usage_steps) == []


async def test_retries_and_failures_are_events_too(engine: Engine) -> None:
    document = chain(
        manual(),
        step(
            "f",
            "probe.flaky",
            {"key": "events", "failures": 1},
            settings={"retries": 1, "retry_backoff_s": 0.01},
        ),
    )
    stream = EventStream()

    result = await engine.run(document, on_event=stream)
    kinds = [(e.kind, getattr(e, "will_retry", None)) async for e in stream]

    assert result.status == "succeeded"
    assert ("step.failed", True) in kinds
    assert kinds[-2:] == [("step.finished", None), ("run.finished", None)]


async def test_engine_listeners_hear_every_run(engine: Engine) -> None:
    heard: list[str] = []
    engine.listeners.append(lambda e: heard.append(e.kind))

    await engine.run(chain(manual()))
    await engine.run(chain(manual()))

    assert heard.count("run.finished") == 2


async def test_a_broken_listener_does_not_break_the_run(engine: Engine) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("listener bug")

    result = await engine.run(chain(manual(), record("a")), on_event=broken)

    assert result.status == "succeeded"


async def test_flow_and_run_ids_travel_with_the_events(engine: Engine) -> None:
    seen: list[Any] = []

    result = await engine.run(chain(manual()), run_id="r-1", flow_id="f-1", on_event=seen.append)

    assert result.run_id == "r-1"
    assert (seen[0].kind, seen[0].run_id, seen[0].flow_id) == ("run.started", "r-1", "f-1")


# -- resuming an interrupted run --------------------------------------------------------------


async def test_resume_does_not_run_finished_steps_again(engine: Engine) -> None:
    document = chain(
        manual(),
        step("once", "probe.flaky", {"key": "resume-once", "failures": 0}),
        step("loop", "logic.loop", {"items": "{{ [1, 2, 3] }}"}),
        step("each", "probe.flaky", {"key": "resume-each", "failures": 0}, parent="loop"),
        record("last"),
    )
    full = await engine.run(document, {"n": 1})
    assert full.status == "succeeded"
    calls_after_full = dict(JOURNAL.calls)
    # as if the process died after the first step and the first loop item
    finished = [
        s
        for s in full.steps
        if s.node_id in ("start", "once") or (s.node_id == "each" and s.item_index == 0)
    ]

    resumed = await engine.run(document, {"n": 1}, resume=finished)

    assert resumed.status == "succeeded"
    items = resumed.output["input"]["items"]
    assert items[0] == full.output["input"]["items"][0]  # the recorded result, handed on
    assert sorted(item["calls"] for item in items[1:]) == [4, 5]  # run now, after the full run's 3
    assert JOURNAL.calls["resume-once"] == calls_after_full["resume-once"]  # not again
    assert JOURNAL.calls["resume-each"] == calls_after_full["resume-each"] + 2  # items 1, 2
    assert resumed.step("once").started_at == full.step("once").started_at


async def test_resume_reruns_a_step_that_failed_and_stopped_the_run(engine: Engine) -> None:
    document = chain(manual(), step("f", "probe.flaky", {"key": "resume-failed", "failures": 1}))
    first = await engine.run(document)
    assert first.status == "failed"

    again = await engine.run(document, resume=first.steps)

    assert again.status == "succeeded"
    assert again.output == {"calls": 2}


def test_run_ids_grow_with_time_and_never_repeat_across_blocks_and_forks() -> None:
    import re
    import subprocess
    import sys
    import time

    from engine.ids import new_run_id

    before = time.time_ns() // 1_000_000
    ids = [new_run_id() for _ in range(2000)]  # several blocks of random bytes
    after = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", run_id) for run_id in ids)
    assert len(set(ids)) == len(ids)
    assert all(before <= int(run_id[:12], 16) <= after for run_id in ids)
    assert [run_id[:12] for run_id in ids] == sorted(run_id[:12] for run_id in ids)
    assert len({run_id[12:] for run_id in ids}) == len(ids)  # the random part differs
    # a forked child must not hand out the random bytes its parent hands out next (forked
    # from a fresh interpreter: this test process has threads, which fork does not copy)
    script = (
        "import os\n"
        "from engine.ids import new_run_id\n"
        "new_run_id()\n"
        "reader, writer = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.write(writer, new_run_id()[12:].encode())\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "print(os.read(reader, 64).decode(), new_run_id()[12:])\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    from_child, from_parent = answer.stdout.split()
    assert re.fullmatch(r"[0-9a-f]{20}", from_child) and from_child != from_parent
