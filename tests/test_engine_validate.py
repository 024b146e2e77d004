"""validate(): every problem at once, each naming the step, the field and what to do."""

from __future__ import annotations

from engine import validate
from tests.documents import chain, flow, manual, step


def errors(document: dict) -> list[tuple[str | None, str | None, str]]:  # type: ignore[type-arg]
    return [(p.node_id, p.field, p.code) for p in validate(document) if p.level == "error"]


def test_a_valid_flow_has_no_problems() -> None:
    assert (
        validate(chain(manual(), step("t", "data.template", {"template": "Hi {{ input.x }}"})))
        == []
    )


def test_every_problem_is_reported_at_once() -> None:
    document = flow(
        [
            manual(),
            step("a", "data.sett", {}),
            step("b", "logic.condition", {"expression": "input.x >"}),
            step("c", "data.template", {"template": "{{ input.name "}),
            step("d", "flow.delay", {"seconds": "soon"}),
            step("d", "data.set", {"values": {}}, name="dup"),
        ],
        [("start", "a"), ("start", "b"), ("b", "maybe", "c"), ("c", "ghost"), ("start", "d")],
    )

    found = errors(document)

    assert ("a", "type", "unknown_type") in found
    assert ("b", "expression", "expression") in found
    assert ("b", "edges", "port") in found
    assert ("c", "template", "template") in found
    assert ("d", "seconds", "config") in found
    assert ("d", "id", "duplicate_id") in found
    assert (None, "edges[3].target", "edge") in found


def test_unknown_type_suggests_the_closest_known_one() -> None:
    problems = validate(chain(manual(), step("a", "data.sett", {})))

    assert "Did you mean 'data.set'?" in problems[0].message
    assert problems[0].node_name == "a"


def test_messages_name_the_step_by_name_and_id() -> None:
    document = chain(
        manual(), step("c1", "logic.condition", {"expression": "input.x >"}, name="Big?")
    )

    (problem,) = validate(document)

    assert problem.message.startswith("Step 'Big?' (c1), field 'expression':")
    assert (problem.node_id, problem.node_name) == ("c1", "Big?")


def test_a_broken_template_is_explained_in_plain_words_naming_step_and_field() -> None:
    document = chain(
        manual(),
        step("s", "data.set", {"values": {"who": "{{ input.first input.last }}"}}, name="Name"),
    )

    (problem,) = validate(document)

    assert (problem.code, problem.field) == ("template", "values.who")
    assert problem.message == (
        "Step 'Name' (s), field 'values.who': the template does not parse: 'input.first' and "
        "'input.last' stand side by side with nothing between them: did you mean "
        "input.first ~ input.last to join them as text, or an operator such as +, == or and "
        "between them?"
    )


def test_a_broken_condition_is_explained_in_plain_words() -> None:
    document = chain(
        manual(), step("c", "logic.condition", {"expression": "input.score >"}, name="High?")
    )

    (problem,) = validate(document)

    assert problem.message == (
        "Step 'High?' (c), field 'expression': the expression 'input.score >' does not parse: "
        "it stops right after '>', which needs a value after it: finish it, or remove the '>'."
    )


def test_an_empty_condition_is_reported_as_empty() -> None:
    document = chain(manual(), step("c", "logic.condition", {"expression": "  "}))

    (problem,) = validate(document)

    assert problem.field == "expression"
    assert "the expression is empty: write one, like input.score > 0.5." in problem.message


def test_duplicate_names_are_an_error_because_expressions_use_them() -> None:
    document = chain(
        manual(),
        step("a", "data.set", {"values": {}}, name="Same"),
        step("b", "data.set", {"values": {}}, name="Same"),
    )

    assert ("b", "name", "duplicate_name") in errors(document)


def test_a_flow_without_a_trigger_is_refused() -> None:
    document = flow([step("a", "data.set", {"values": {}})], [])

    (problem,) = [p for p in validate(document) if p.level == "error"]
    assert problem.code == "no_trigger"
    assert "Add a trigger" in problem.message


def test_a_step_nothing_reaches_is_a_warning() -> None:
    document = flow([manual(), step("lonely", "data.set", {"values": {}})], [])

    (problem,) = validate(document)

    assert (problem.level, problem.node_id, problem.code) == ("warning", "lonely", "unreachable")


def test_unknown_config_keys_are_reported_as_typos() -> None:
    document = chain(manual(), step("t", "data.template", {"template": "x", "tempalte": "y"}))

    (problem,) = validate(document)

    assert problem.field == "tempalte"
    assert "spelling" in problem.message


def test_templated_field_is_not_type_checked_until_it_is_rendered() -> None:
    document = chain(manual(), step("d", "flow.delay", {"seconds": "{{ input.wait }}"}))

    assert validate(document) == []


def test_edge_into_a_trigger_is_refused() -> None:
    document = flow(
        [manual(), step("a", "data.set", {"values": {}})], [("start", "a"), ("a", "start")]
    )

    assert ("start", "edges", "port") in errors(document)


def test_edge_to_a_missing_input_port_is_refused() -> None:
    document = chain(manual(), step("a", "data.set", {"values": {}}))
    document["edges"][0]["target_port"] = "side"

    assert ("a", "edges", "port") in errors(document)


def test_body_steps_must_sit_in_a_loop() -> None:
    document = chain(
        manual(),
        step("t", "data.template", {"template": "x"}),
        step("b", "data.set", {"values": {}}, parent="t"),
    )

    assert ("b", "parent", "body") in errors(document)


def test_edges_may_not_cross_a_loop_border() -> None:
    document = flow(
        [
            manual(),
            step("loop", "logic.loop", {"items": "{{ input.items }}"}),
            step("inner", "data.set", {"values": {}}, parent="loop"),
            step("after", "data.set", {"values": {}}),
        ],
        [("start", "loop"), ("loop", "after"), ("inner", "after")],
    )

    assert ("after", "edges", "body") in errors(document)


def test_malformed_nodes_are_reported_with_the_others() -> None:
    document = chain(manual(), step("a", "data.sett", {}))
    document["nodes"].append({"type": "data.set"})
    document["edges"].append({"source": "a"})

    found = {(p.field, p.code) for p in validate(document)}

    assert ("nodes[2].id", "shape") in found
    assert ("edges[1].target", "shape") in found
    assert ("type", "unknown_type") in found


def test_empty_loop_is_a_warning() -> None:
    document = chain(manual(), step("loop", "logic.loop", {"items": "{{ input.items }}"}))

    (problem,) = validate(document)
    assert (problem.level, problem.code) == ("warning", "empty_body")
