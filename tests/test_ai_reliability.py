"""ai.agent when vendors fail (plain-words errors, retries, circuit breaker, fallback), and
the calls it saves (replay of a recorded run, the response cache)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from engine import Engine, RunResult, TokenStreamed
from nodes.ai import CIRCUITS, RETRY_POLICY
from tests.documents import flow, manual, step
from tests.fake_llm import (
    ANTHROPIC,
    OPENAI,
    FakeLLM,
    ai_engine_fixture,  # noqa: F401 (pytest fixture)
    failure,
    fake_fixture,  # noqa: F401 (pytest fixture)
    fake_llm_server_fixture,  # noqa: F401 (pytest fixture)
    text,
    tool_call,
)

VENDORS = {"openai": OPENAI, "anthropic": ANTHROPIC}


def agent_flow(config: dict[str, Any]) -> dict[str, Any]:
    return flow([manual(), step("ask", "ai.agent", {"prompt": "hi", **config})], [("start", "ask")])


def error_of(result: RunResult) -> str:
    assert result.status == "failed", result.output
    assert result.error is not None
    return str(result.error["message"])


def logs_of(result: RunResult, node_id: str = "ask") -> list[str]:
    return [line["message"] for line in result.step(node_id).logs]


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RETRY_POLICY, "backoff_s", 0.01)


# -- failures in plain words -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "title", "model"),
    [("openai", "OpenAI", "gpt-4o-mini"), ("anthropic", "Anthropic", "claude-haiku-4-5")],
)
async def test_a_refused_key_names_the_credential_and_the_model(
    fake: FakeLLM, ai_engine: Engine, vendor: str, title: str, model: str
) -> None:
    fake.script(failure(401, "Incorrect API key provided"))

    result = await ai_engine.run(agent_flow(VENDORS[vendor]))

    assert error_of(result) == (
        f"Step 'ask' failed: {title} refused the API key from the credential "
        f"'{vendor}-test' (401 Unauthorized) for model '{model}': Incorrect API key "
        "provided. Check or replace the key."
    )
    assert len(fake.requests) == 1, "a refused key is not tried again"


async def test_a_refused_key_from_the_environment_names_the_variable(
    fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    fake.script(failure(401, "Incorrect API key provided"))
    engine = Engine()
    try:
        result = await engine.run(
            agent_flow({"provider": "openai", "model": "gpt-4o", "base_url": fake.openai_url})
        )
    finally:
        await engine.aclose()

    assert "refused the API key from the OPENAI_API_KEY environment variable" in error_of(result)
    assert "model 'gpt-4o'" in error_of(result)


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_an_unknown_model_is_named_with_the_credential(
    fake: FakeLLM, ai_engine: Engine, vendor: str
) -> None:
    fake.script(failure(404, "The model `gpt-9` does not exist"))

    result = await ai_engine.run(agent_flow({**VENDORS[vendor], "model": "gpt-9"}))

    message = error_of(result)
    assert "does not know the model 'gpt-9' (404 Not Found" in message
    assert f"the credential '{vendor}-test'" in message
    assert "The model `gpt-9` does not exist. Check the model's name." in message


async def test_a_refused_request_quotes_the_vendor(fake: FakeLLM, ai_engine: Engine) -> None:
    fake.script(failure(400, "max_tokens is too large"))

    result = await ai_engine.run(agent_flow(ANTHROPIC))

    assert error_of(result).endswith(
        "Anthropic refused the request for model 'claude-haiku-4-5' (400): max_tokens is too large."
    )


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_a_rate_limit_is_retried_after_the_wait_the_vendor_asks_for(
    fake: FakeLLM, ai_engine: Engine, vendor: str
) -> None:
    fake.script(failure(429, "Rate limit reached", retry_after=1), text("finally"))

    result = await ai_engine.run(agent_flow({**VENDORS[vendor], "stream": False}))

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "finally"
    first, second = fake.requests
    assert second.at - first.at >= 0.95, "Retry-After: 1 was not honoured"
    assert second.body == first.body
    assert any("trying again in 1 s (attempt 2 of 3)" in line for line in logs_of(result))


async def test_a_rate_limit_asking_for_a_long_wait_fails_at_once(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(failure(429, "Rate limit reached", retry_after=120))

    result = await ai_engine.run(agent_flow(OPENAI))

    message = error_of(result)
    assert "kept refusing calls to model 'gpt-4o-mini' with 429 Too Many Requests" in message
    assert "the credential 'openai-test'" in message
    assert "It asked to wait 120 s, longer than FlowLoom waits (30 s)." in message
    assert len(fake.requests) == 1


async def test_a_rate_limit_that_lasts_fails_after_the_retries(
    fake: FakeLLM, ai_engine: Engine, quick_retries: None
) -> None:
    fake.script(*[failure(429, "Rate limit reached")] * 2)

    result = await ai_engine.run(agent_flow({**OPENAI, "retries": 1}))

    assert (
        "429 Too Many Requests (rate limit of the key from the credential 'openai-test') after 2 attempts: Rate limit reached."
        in error_of(result)
    )
    assert len(fake.requests) == 2


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_a_vendor_server_error_is_retried(
    fake: FakeLLM, ai_engine: Engine, vendor: str, quick_retries: None
) -> None:
    fake.script(failure(500), failure(529 if vendor == "anthropic" else 503), text("recovered"))

    result = await ai_engine.run(agent_flow(VENDORS[vendor]))

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "recovered"
    assert len(fake.requests) == 3
    warnings = [line for line in logs_of(result) if "trying again" in line]
    assert len(warnings) == 2


async def test_a_lasting_server_error_fails_after_every_attempt(
    fake: FakeLLM, ai_engine: Engine, quick_retries: None
) -> None:
    fake.script(*[failure(500, "The server had an error")] * 3)

    result = await ai_engine.run(agent_flow(OPENAI))

    assert error_of(result).endswith(
        "OpenAI failed with a server error (500) for model 'gpt-4o-mini' after 3 attempts: "
        "The server had an error."
    )


async def test_a_model_that_does_not_answer_in_time_times_out(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text("too late", delay_s=1.0))

    result = await ai_engine.run(agent_flow({**OPENAI, "timeout_s": 0.2, "retries": 0}))

    assert error_of(result).endswith(
        "OpenAI did not answer within 0.2 s for model 'gpt-4o-mini'. Raise the step's "
        "'timeout_s' if the model needs longer."
    )


async def test_nothing_listening_at_the_address_fails_in_plain_words(ai_engine: Engine) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"http://127.0.0.1:{port}/v1"

    result = await ai_engine.run(agent_flow({**OPENAI, "base_url": address, "retries": 0}))

    assert f"could not connect to OpenAI at {address} for model 'gpt-4o-mini'" in error_of(result)


# -- circuit breaker and fallback --------------------------------------------------------------


async def test_after_five_failures_in_a_row_calls_fail_fast_and_then_recover(
    fake: FakeLLM, ai_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CIRCUITS, "cooldown_s", 0.3)
    document = agent_flow({**OPENAI, "retries": 0})
    fake.script(*[failure(500, "down")] * 5)

    for _ in range(5):
        assert "server error (500)" in error_of(await ai_engine.run(document))
    paused = await ai_engine.run(document)

    assert len(fake.requests) == 5, "the open circuit still let a call through"
    assert (
        "calls to OpenAI model 'gpt-4o-mini' are paused for another 1 s: the last 5 failed in a "
        "row (last: 500 down). Set a fallback model to keep working meanwhile."
    ) in error_of(paused)

    await asyncio.sleep(0.35)
    fake.script(text("back"))
    recovered = await ai_engine.run(document)
    assert recovered.output["text"] == "back"
    assert CIRCUITS.breaker("openai", fake.openai_url, "gpt-4o-mini").failures == 0


async def test_refused_keys_do_not_open_the_circuit(fake: FakeLLM, ai_engine: Engine) -> None:
    fake.script(*[failure(401)] * 6)

    for _ in range(6):
        assert "401 Unauthorized" in error_of(await ai_engine.run(agent_flow(OPENAI)))

    assert len(fake.requests) == 6


async def test_the_fallback_takes_over_when_the_model_keeps_failing(
    fake: FakeLLM, ai_engine: Engine, quick_retries: None
) -> None:
    fake.script(failure(503), failure(503), text("from claude", input_tokens=8, output_tokens=2))
    document = agent_flow(
        {
            **OPENAI,
            "retries": 1,
            "system": "Be kind.",
            "fallback": {
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "credential": "anthropic-test",
            },
        }
    )

    result = await ai_engine.run(document)

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "from claude"
    assert result.output["model"] == "claude-haiku-4-5"
    assert result.output["cost_usd"] == pytest.approx((8 * 1.0 + 2 * 5.0) / 1e6)
    assert [r.vendor for r in fake.requests] == ["openai", "openai", "anthropic"]
    assert fake.requests[2].body["system"] == "Be kind."
    assert fake.requests[2].body["messages"] == [{"role": "user", "content": "hi"}]
    assert any(
        "The fallback model 'claude-haiku-4-5' (anthropic) takes over." in line
        for line in logs_of(result)
    )
    assert [e["provider"] for e in result.step("ask").exchanges] == ["anthropic"]


async def test_the_fallback_answers_at_once_while_the_circuit_is_open(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    breaker = CIRCUITS.breaker("openai", fake.openai_url, "gpt-4o-mini")
    for _ in range(5):
        breaker.failed("500 down")
    fake.script(text("fallback answer"))
    document = agent_flow(
        {
            **OPENAI,
            "fallback": {
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "credential": "anthropic-test",
            },
        }
    )

    result = await ai_engine.run(document)

    assert result.output["text"] == "fallback answer"
    assert [r.vendor for r in fake.requests] == ["anthropic"]
    assert any("are paused for another" in line for line in logs_of(result))


async def test_the_fallback_keeps_answering_the_later_tool_rounds(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(failure(401), tool_call("Echo", {"n": 1}), text("done"))
    document = flow(
        [
            manual(),
            step("ask", "ai.agent", {**OPENAI, "prompt": "go", "fallback": {**ANTHROPIC}}),
            step("echo", "data.set", {"values": {"n": "{{ args.n }}"}}, name="Echo"),
        ],
        [("start", "ask"), ("ask", "tools", "echo")],
    )

    result = await ai_engine.run(document)

    assert result.output["text"] == "done"
    assert [r.vendor for r in fake.requests] == ["openai", "anthropic", "anthropic"]
    asked, answered = fake.requests[2].body["messages"][-2:]
    assert asked["content"][0]["type"] == "tool_use"
    assert answered["content"][0]["type"] == "tool_result"


async def test_when_the_fallback_fails_too_both_failures_are_told(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(failure(404, "no such model"), failure(401, "bad key"))
    document = agent_flow({**OPENAI, "fallback": {**ANTHROPIC}})

    message = error_of(await ai_engine.run(document))

    assert "OpenAI does not know the model 'gpt-4o-mini'" in message
    assert "The fallback model failed too: Anthropic refused the API key" in message


# -- replay and cache --------------------------------------------------------------------------


async def test_replaying_a_run_answers_from_its_recording_without_calling_the_model(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(
        tool_call("Echo", {"n": 2}), text("The answer is 2.", chunks=("The answer", " is 2."))
    )
    document = flow(
        [
            manual(),
            step("ask", "ai.agent", {**ANTHROPIC, "prompt": "{{ input }}"}),
            step("echo", "data.set", {"values": {"n": "{{ args.n }}"}}, name="Echo"),
        ],
        [("start", "ask"), ("ask", "tools", "echo")],
    )
    first = await ai_engine.run(document, "what is 1+1?")
    assert first.status == "succeeded", first.error
    fake.reset()

    tokens: list[str] = []
    replayed = await ai_engine.run(
        document,
        "what is 1+1?",
        replay=first.steps,
        on_event=lambda e: tokens.append(e.text) if isinstance(e, TokenStreamed) else None,
    )

    assert fake.requests == []
    assert replayed.status == "succeeded", replayed.error
    assert replayed.output == first.output
    assert replayed.step("ask").exchanges == first.step("ask").exchanges
    assert replayed.step("echo").output == first.step("echo").output
    assert (replayed.step("ask").input_tokens, replayed.step("ask").cost_usd) == (0, 0)
    assert tokens == ["The answer is 2."]
    assert any("replayed from the recorded run" in line for line in logs_of(replayed))


async def test_an_identical_request_within_the_ttl_is_answered_from_the_cache(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text("cached answer", input_tokens=10, output_tokens=3), text("fresh answer"))
    document = agent_flow({**OPENAI, "prompt": "{{ input }}", "cache_ttl_s": 60, "temperature": 0})

    first = await ai_engine.run(document, "same question")
    second = await ai_engine.run(document, "same question")
    different = await ai_engine.run(document, "another question")

    assert len(fake.requests) == 2
    assert second.output == first.output
    assert different.output["text"] == "fresh answer"
    assert "answered from the cache: no model call, no tokens spent" in logs_of(second)
    assert (second.step("ask").input_tokens, second.step("ask").cost_usd) == (0, 0)
    assert second.step("ask").exchanges[0]["request"] == first.step("ask").exchanges[0]["request"]


async def test_the_cache_is_off_unless_asked_for_and_entries_expire(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.always(text("again"))

    for _ in range(2):
        await ai_engine.run(agent_flow(OPENAI))
    short = agent_flow({**OPENAI, "cache_ttl_s": 0.1})
    await ai_engine.run(short)
    await asyncio.sleep(0.15)
    await ai_engine.run(short)

    assert len(fake.requests) == 4
