"""Expressions: sandboxed Jinja2, native types for whole-value templates, compiled once per flow."""

from __future__ import annotations

import pytest

from engine import ExpressionError, compile_flow, run_flow
from engine import expressions as expressions_module
from engine.expressions import Scope, Template, compile_expression, compile_value
from tests.documents import chain, manual, step


def render(source: str, **names: object) -> object:
    return Template(source).render(Scope(dict(names)))


def test_whole_value_template_keeps_the_native_type() -> None:
    assert render("{{ input.count + 1 }}", input={"count": 1}) == 2
    assert render("{{ input.items }}", input={"items": [1, 2]}) == [1, 2]
    assert render("  {{ input.flag }}  ", input={"flag": True}) is True


def test_mixed_template_renders_to_a_string() -> None:
    assert render("n={{ input.count + 1 }}", input={"count": 1}) == "n=2"
    assert render("{{ a }}{{ b }}", a=1, b=2) == "12"


def test_keys_win_over_dict_methods() -> None:
    assert render("{{ input.items }}", input={"items": "mine"}) == "mine"


def test_missing_names_render_as_nothing() -> None:
    assert render("{{ input.missing }}", input={}) is None
    assert render("[{{ input.missing }}]", input={}) == "[]"


def test_nested_values_are_rendered_everywhere() -> None:
    template = compile_value({"a": ["{{ x }}", {"b": "x={{ x }}"}, 3], "c": "plain"})

    assert template is not None
    assert template.render(Scope({"x": 5})) == {"a": [5, {"b": "x=5"}, 3], "c": "plain"}
    assert compile_value({"a": ["plain", 1]}) is None


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("().__class__.__bases__[0].__subclasses__()", "unsafe"),
        ("cycler.__init__.__globals__", "unsafe"),
        ("input.update({'x': 1})", "unsafe"),
        ("input.pop('a')", "unsafe"),
        ("'a' * 100000000", "too large"),
        ("10 ** 100000", "too large"),
        ("range(10000000) | list", "Range too big"),
    ],
)
def test_the_sandbox_refuses_python_internals_and_huge_values(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason):
        compile_expression(source).render(Scope({"input": {"a": 1}}))


def test_internal_attributes_of_data_read_as_nothing() -> None:
    assert compile_expression("input.__class__").render(Scope({"input": {}})) is None
    assert compile_expression("lipsum.__globals__").render(Scope({})) is None


def test_an_expression_that_does_not_parse_says_so() -> None:
    with pytest.raises(ExpressionError, match="does not parse"):
        compile_expression("input.x >")


def parse_error(source: str, *, expression: bool = False) -> str:
    """The reason a template (or with `expression`, a bare expression) does not parse."""
    with pytest.raises(ExpressionError) as caught:
        if expression:
            compile_expression(source)
        else:
            Template(source)
    return caught.value.reason


@pytest.mark.parametrize(
    ("source", "explained"),
    [
        ("Hi {{ input.name ", "a '{{' is never closed: add '}}' after the expression"),
        ("Hi {{ input.name }", "end an expression with two braces '}}'"),
        ("{{ 'abc }}", "a quote (') is never closed: add the closing '"),
        ("{{ input['a' }}", "a '[' is never closed: add the missing ']'"),
        ("{{ input.a | default('x' }}", "a '(' is never closed: add the missing ')'"),
        ("{{ input.a [1, 2) }}", "a '[' is closed with ')': close it with ']'"),
        ("{{ input.a) }}", "a ')' closes nothing: remove it"),
        (
            "{{ input.a input.b }}",
            "'input.a' and 'input.b' stand side by side with nothing between them: did you "
            "mean input.a ~ input.b to join them as text",
        ),
        ("{{ input name }}", "did you mean input.name to read a field, input ~ name"),
        ("{{ [1 2] }}", "'1' and '2' stand side by side: separate the items of a list"),
        ("{{ input.a | uper }}", "there is no filter 'uper': did you mean 'upper'?"),
        ("{{ input.a | lenght }}", "there is no filter 'lenght': did you mean 'length'?"),
        ("{{ input.a | zzzz }}", "there is no filter 'zzzz'; some that exist: default, length"),
        ("{{ input.a is nonsense }}", "there is no test 'nonsense'"),
        ("{{ input.a + }}", "it stops right after '+', which needs a value after it"),
        ("{{ }}", "there is nothing between '{{' and '}}'"),
        ("{{ input. }}", "a '.' must be followed by a field name or a number"),
        ("{{ input.a = 1 }}", "to compare two values, use '=='"),
        ("{{ input.a === 1 }}", "compare with '==' or '!='"),
        ("{{ input.a && input.b }}", "'&&' is not an operator here: use 'and'"),
        ("{{ input.a || input.b }}", "'||' is not an operator here: use 'or'"),
        ("{{ input.a ? 1 : 2 }}", "write A if CONDITION else B"),
        ("{{ input.a $ }}", "the character $ cannot be used in an expression"),
        ("{{ input.a | }}", "a '|' must be followed by a filter name"),
        ("{{{ input.a }}", "'{{{' has one brace too many"),
        ("{% if input.ok %}yes", "the {% if %} block is never closed: add {% endif %}"),
        ("{% if input.ok %}yes{% endfor %}", "close that first with {% endif %}"),
        ("{% iff input.ok %}yes{% endif %}", "there is no {% iff %} tag: did you mean {% if %}?"),
        ("{% endif %}", "{% endif %} belongs to no open block"),
        ("{% if %}yes{% endif %}", "the {% if %} tag needs an expression after 'if'"),
        ("{% for x y %}{% endfor %}", "a for loop is written {% for item in items %}"),
        ("{# a note", "a comment '{#' is never closed: add '#}'"),
    ],
)
def test_a_template_that_does_not_parse_says_why_in_plain_words(
    source: str, explained: str
) -> None:
    reason = parse_error(source)

    assert reason.startswith("does not parse")
    assert explained in reason
    assert "details:" not in reason  # Jinja's own words only when nothing here explains it


@pytest.mark.parametrize(
    ("source", "explained"),
    [
        ("input.x >", "it stops right after '>', which needs a value after it"),
        ("input.ok and", "it stops right after 'and'"),
        ("input.a input.b", "did you mean input.a ~ input.b to join them as text"),
        ("(input.a + 1", "a '(' is never closed: add the missing ')'"),
        ("input.a }", "a '}' closes nothing: remove it"),
        ("input.score = 1", "to compare two values, use '=='"),
        ("{{ input.score > 0.5 }}", "write it without {{ }}, as input.score > 0.5"),
        ("input.a }}", "write it without {{ }}, as input.a"),  # Jinja alone reads input.a
        ("input.a }} ~ {{ input.b", "write it without {{ }}, as input.a ~ input.b"),
        ("input.name | uper", "did you mean 'upper'?"),
    ],
)
def test_an_expression_that_does_not_parse_says_why_in_plain_words(
    source: str, explained: str
) -> None:
    assert explained in parse_error(source, expression=True)


def test_a_syntax_error_says_where_it_is_when_that_is_known() -> None:
    assert parse_error("Hello {{ input.name }}\nand {{ 'you }}").startswith(
        "does not parse at line 2, column 8: a quote (') is never closed"
    )
    assert parse_error("Hi\n{{ input.a input.b }}").startswith("does not parse at line 2: ")
    assert parse_error("input.a && input.b", expression=True).startswith(
        "does not parse at column 9: "
    )
    assert parse_error("{{ input.a + }}").startswith("does not parse: ")  # one line: no line


def test_a_syntax_error_without_a_plain_explanation_keeps_jinjas_words() -> None:
    reason = parse_error("{{ f(x=1, 2) }}")

    assert reason == (
        "does not parse: something in it is not valid "
        "(details: invalid syntax for function call expression)"
    )


def test_runtime_errors_name_the_field() -> None:
    template = compile_value({"values": {"n": "{{ input.x + 'a' }}"}})

    assert template is not None
    with pytest.raises(ExpressionError) as caught:
        template.render(Scope({"input": {"x": 1}}))
    assert caught.value.field == "values.n"


async def test_failed_expression_fails_the_step_naming_node_and_field() -> None:
    document = chain(
        manual(), step("s", "data.set", {"values": {"n": "{{ input.x + 'a' }}"}}, name="Sum")
    )

    result = await run_flow(document, {"x": 1})

    assert result.status == "failed"
    assert result.error is not None
    assert "Step 'Sum' (s)" in result.error["message"]
    assert "values.n" in result.error["message"]


async def test_scope_holds_input_nodes_trigger_vars_and_run() -> None:
    document = chain(
        manual(),
        step("first", "data.set", {"values": {"n": 41}}, name="First"),
        step(
            "t",
            "data.set",
            {
                "values": {
                    "by_name": "{{ nodes.First.n + 1 }}",
                    "by_id": "{{ nodes['first'].n }}",
                    "trigger": "{{ trigger.who }}",
                    "var": "{{ vars.greeting }}",
                    "run": "{{ run.id }}",
                },
                "keep_input": False,
            },
        ),
    )
    document["vars"] = {"greeting": "hi"}

    result = await run_flow(document, {"who": "ada"})

    assert result.status == "succeeded", result.error
    assert result.output == {
        "by_name": 42,
        "by_id": 41,
        "trigger": "ada",
        "var": "hi",
        "run": result.run_id,
    }


async def test_templates_are_compiled_once_per_flow_not_per_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = chain(
        manual(),
        step("s", "data.set", {"values": {"n": "{{ input.n + 1 }}"}}),
        step("c", "logic.condition", {"expression": "input.n > 1"}),
    )
    compiled = compile_flow(document)
    calls = []
    original = expressions_module.ENVIRONMENT.from_string
    monkeypatch.setattr(
        expressions_module.ENVIRONMENT,
        "from_string",
        lambda *a, **k: calls.append(a) or original(*a, **k),
    )

    for n in range(20):
        result = await run_flow(compiled, {"n": n})
        assert result.status == "succeeded"

    assert calls == []
