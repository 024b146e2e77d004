"""The AI steps' parts on their own: prices, JSON schema checks, tool names, wire formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from engine import default_registry
from nodes.ai.cache import ResponseCache
from nodes.ai.prices import PriceList
from nodes.ai.structured import parse_json_answer, schema_problems
from nodes.ai.tools import safe_tool_name
from nodes.ai.vendors import VENDORS, ModelRequest, Tool, _retry_after_s
from tests.test_nodes_catalog import fields_without_description

# -- catalog -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "title"), [("ai.agent", "AI agent"), ("ai.router", "AI router")]
)
def test_the_ai_steps_are_installed_and_describe_every_field(type_name: str, title: str) -> None:
    node_type = default_registry().get(type_name)
    assert node_type is not None
    described = node_type.describe()

    assert (described["title"], described["category"]) == (title, "AI")
    assert described["description"].endswith(".")
    assert fields_without_description(described["config_schema"]) == []


# -- prices ------------------------------------------------------------------------------------


def test_prices_cover_dated_names_and_aliases_but_not_other_models() -> None:
    prices = PriceList.load()

    assert prices.cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert prices.price("gpt-4o-mini-2024-07-18") == prices.price("gpt-4o-mini")
    assert prices.price("claude-sonnet-4-20250514") == prices.price("claude-sonnet-4")
    assert prices.price("claude-3-5-sonnet-latest") == prices.price("claude-3-5-sonnet")
    assert prices.price("claude-opus-4-9") is None  # not "claude-opus-4" in disguise
    assert prices.cost_usd("llama3.2", 100, 100) is None


def test_registered_prices_win_and_bad_ones_are_refused() -> None:
    prices = PriceList.load()
    prices.register({"gpt-4o": {"input": 1, "output": 1}, "mine": {"input": 0, "output": 0}})

    assert prices.cost_usd("gpt-4o-2024-08-06", 500_000, 500_000) == pytest.approx(1.0)
    assert prices.cost_usd("mine", 10, 10) == 0
    with pytest.raises(ValueError, match="'x' needs numbers 'input' and 'output'"):
        prices.register({"x": {"input": 1}})
    prices.reset_overrides()
    assert prices.cost_usd("mine", 10, 10) is None


# -- JSON answers ------------------------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        "kind": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": "^k"}]},
    },
    "required": ["name"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("value", "problems"),
    [
        ({"name": "Ada", "age": 36, "tags": ["a"], "kind": None}, []),
        ({"name": "Ada", "age": 36.0, "kind": "kx"}, []),
        (
            {"age": -1},
            ["the answer lacks the required key 'name'", "'age' should be at least 0, not -1"],
        ),
        ({"name": ""}, ["'name' should be at least 1 character(s) long"]),
        ({"name": "x", "age": True}, ["'age' should be integer, not a true/false value (true)"]),
        (
            {"name": "x", "tags": ["c", "a", "b"]},
            [
                "'tags' should have at most 2 item(s), not 3",
                "'tags[0]' should be one of \"a\", \"b\", not text ('c')",
            ],
        ),
        ({"name": "x", "kind": "z"}, ["'kind' fits none of the shapes the schema allows"]),
        (
            {"name": "x", "extra": 1},
            ["the answer has the key 'extra', which the schema does not allow"],
        ),
        ([1], ["the answer should be object, not a list"]),
    ],
)
def test_schema_problems_are_told_in_plain_words(value: Any, problems: list[str]) -> None:
    assert schema_problems(value, SCHEMA) == problems


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  ```json\n[1, 2]\n```  ", [1, 2]),
        ('The result is {"a": {"b": 2}}. Hope that helps!', {"a": {"b": 2}}),
        ("42", 42),
    ],
)
def test_json_is_read_from_the_answer_even_with_fences_or_prose(answer: str, value: Any) -> None:
    assert parse_json_answer(answer) == value


# -- tool names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "taken", "safe"),
    [
        ("lookup", set(), "lookup"),
        ("Look up order #7", set(), "Look_up_order_7"),
        ("Wetter ☀", set(), "Wetter"),
        ("☀☀", set(), "tool"),
        ("search", {"search", "search_2"}, "search_3"),
        ("x" * 80, set(), "x" * 64),
        ("x" * 80, {"x" * 64}, "x" * 62 + "_2"),
    ],
)
def test_tool_names_are_made_safe_and_unique(name: str, taken: set[str], safe: str) -> None:
    assert safe_tool_name(name, taken) == safe


# -- wire formats ------------------------------------------------------------------------------


def conversation() -> ModelRequest:
    return ModelRequest(
        system="Be brief.",
        messages=[
            {"role": "user", "content": "Weather in Oslo and Rome?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": "c1", "name": "weather", "arguments": {"city": "Oslo"}},
                    {"id": "c2", "name": "weather", "arguments": {"city": "Rome"}},
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "c1",
                "name": "weather",
                "content": "3",
                "is_error": False,
            },
            {
                "role": "tool",
                "tool_call_id": "c2",
                "name": "weather",
                "content": '{"error": "x"}',
                "is_error": True,
            },
        ],
        tools=[Tool("weather", "Weather by city.", {"type": "object", "properties": {}})],
        max_tokens=100,
    )


def test_a_tool_round_in_openai_chat_format() -> None:
    wire = VENDORS["openai"].wire_request("gpt-4o", conversation(), stream=False)

    assert wire["messages"][0] == {"role": "system", "content": "Be brief."}
    assert wire["messages"][2] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    }
    assert wire["messages"][3:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
        {"role": "tool", "tool_call_id": "c2", "content": '{"error": "x"}'},
    ]
    assert wire["max_completion_tokens"] == 100
    assert "max_tokens" not in wire and "temperature" not in wire


def test_a_tool_round_in_anthropic_messages_format() -> None:
    wire = VENDORS["anthropic"].wire_request("claude-haiku-4-5", conversation(), stream=True)

    assert wire["system"] == "Be brief."
    assert wire["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "c2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "3"},
                {
                    "type": "tool_result",
                    "tool_use_id": "c2",
                    "content": '{"error": "x"}',
                    "is_error": True,
                },
            ],
        },
    ]
    assert wire["tools"] == [
        {
            "name": "weather",
            "description": "Weather by city.",
            "input_schema": {"type": "object", "properties": {}},
        }
    ]
    assert (wire["max_tokens"], wire["stream"]) == (100, True)


def test_retry_after_is_read_in_milliseconds_seconds_or_as_a_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert _retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after_s({"retry-after": "2"}) == 2.0
    assert 28 < (_retry_after_s({"retry-after": later}) or 0) <= 30
    assert _retry_after_s({"retry-after": "soon"}) is None
    assert _retry_after_s({}) is None


def test_the_cache_forgets_the_least_recently_used_answers() -> None:
    cache = ResponseCache(max_entries=2)
    keys = [ResponseCache.key("openai", None, {"model": "m", "n": i}) for i in range(3)]
    cache.put(keys[0], {"text": "0"}, 60)
    cache.put(keys[1], {"text": "1"}, 60)
    assert cache.get(keys[0]) == {"text": "0"}
    cache.put(keys[2], {"text": "2"}, 60)

    assert (cache.get(keys[0]), cache.get(keys[1]), cache.get(keys[2])) == (
        {"text": "0"},
        None,
        {"text": "2"},
    )
    assert ResponseCache.key("openai", None, {"model": "m", "stream": True}) == ResponseCache.key(
        "openai", None, {"model": "m"}
    )
