"""One step's conversation with its model: every call goes through `ModelSession.ask`.

For each call, in order: an earlier run's recorded answer (replay: no model call), the response
cache (steps with `cache_ttl_s`), then the vendor itself, with retries, the model's circuit
breaker, and the fallback model when the primary fails. Every answer is recorded on the step
as an exchange (the request as sent, never a key) and its tokens and cost are counted.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import NodeError
from engine.node import StepContext
from nodes.ai.cache import RESPONSE_CACHE, ResponseCache
from nodes.ai.prices import PRICES
from nodes.ai.resilience import CIRCUITS, RETRY_POLICY
from nodes.ai.vendors import VENDORS, Failure, ModelAnswer, ModelRequest, Provider, Vendor, classify


class ModelCallFailed(NodeError):
    """A model call failed for good (after its retries, or its circuit is open)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A model to ask and how to reach it, as the step configures it."""

    provider: Provider
    model: str
    credential: str | None = None
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class CallOptions:
    stream: bool = False
    retries: int = 2
    timeout_s: float = 120.0
    cache_ttl_s: float | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A target resolved to a vendor, an address and an API key."""

    target: Target
    vendor: Vendor
    base_url: str | None
    api_key: str
    #: Where the key came from, in words for messages ("the credential 'main'").
    key_source: str

    @property
    def title(self) -> str:
        return self.vendor.title(self.base_url)


async def resolve(ctx: StepContext, target: Target) -> Endpoint:
    """Find the target's API key and address: its credential, else the SDK's environment
    variables; `base_url` in the step's config wins over both."""
    vendor = VENDORS[target.provider]
    fields: dict[str, str] = {}
    if target.credential:
        fields = dict(await ctx.credential(target.credential))
        api_key = fields.get("api_key", "")
        key_source = f"the credential '{target.credential}'"
        if not api_key and target.provider != "openai_compatible":
            raise NodeError(
                f"the credential '{target.credential}' has no 'api_key' field, so model "
                f"'{target.model}' cannot be called. Add the key to the credential."
            )
    else:
        api_key = os.environ.get(vendor.key_env, "")
        key_source = f"the {vendor.key_env} environment variable"
        if not api_key and target.provider != "openai_compatible":
            raise NodeError(
                f"there is no API key to call {vendor.title(None)} model '{target.model}': choose "
                f"a credential in the step's 'credential' field or set {vendor.key_env}."
            )
    if not api_key:
        api_key, key_source = "none", "no API key"  # local servers usually need none
    base_url = target.base_url or fields.get("base_url") or os.environ.get(vendor.url_env) or None
    if target.provider == "openai_compatible" and not base_url:
        raise NodeError(
            "an OpenAI-compatible provider needs the server's address: set 'base_url' (for "
            "example http://localhost:11434/v1 for Ollama) or give the credential a 'base_url'."
        )
    return Endpoint(target, vendor, base_url, api_key, key_source)


class ModelSession:
    """Asks the step's model (or its fallback) and keeps count of what the answers used."""

    def __init__(self, ctx: StepContext, targets: Sequence[Target], options: CallOptions) -> None:
        self._ctx = ctx
        self._targets = list(targets)
        self._options = options
        self._current = 0  # once the primary has failed, the fallback answers the rest
        self._endpoints: dict[int, Endpoint] = {}
        self._exchanges = 0
        self._unpriced: set[str] = set()
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.model = self._targets[0].model

    async def ask(self, request: ModelRequest) -> ModelAnswer:
        """The model's answer to `request`; ModelCallFailed (plain words) when there is none."""
        index = self._exchanges
        self._exchanges += 1
        recorded = self._ctx.replayed_exchange(index)
        if recorded is not None:
            answer = ModelAnswer.from_dict(recorded["response"])
            self._ctx.log("answer replayed from the recorded run: no model call, no tokens spent")
            self._ctx.record_exchange(recorded)
            self._answered_without_call(answer)
            return answer
        failures: list[str] = []
        while True:
            try:
                return await self._ask(self._targets[self._current], request)
            except ModelCallFailed as exc:
                failures.append(str(exc))
                if self._current + 1 >= len(self._targets):
                    if len(failures) > 1:
                        raise ModelCallFailed(
                            f"{failures[0]} The fallback model failed too: {failures[-1]}"
                        ) from None
                    raise
                self._current += 1
                fallback = self._targets[self._current]
                self._ctx.log(
                    f"{exc} The fallback model '{fallback.model}' ({fallback.provider}) takes over.",
                    level="warning",
                )

    async def _ask(self, target: Target, request: ModelRequest) -> ModelAnswer:
        endpoint = self._endpoints.get(self._current)
        if endpoint is None:
            endpoint = self._endpoints[self._current] = await resolve(self._ctx, target)
        wire = endpoint.vendor.wire_request(target.model, request, self._options.stream)
        ttl = self._options.cache_ttl_s
        cache_key = ResponseCache.key(target.provider, endpoint.base_url, wire) if ttl else None
        if cache_key is not None:
            cached = RESPONSE_CACHE.get(cache_key)
            if cached is not None:
                answer = ModelAnswer.from_dict(cached)
                self._ctx.log("answered from the cache: no model call, no tokens spent")
                self._record(target, wire, cached)
                self._answered_without_call(answer)
                return answer
        answer = await self._call(endpoint, wire)
        response = answer.to_dict()
        if cache_key is not None and ttl:
            RESPONSE_CACHE.put(cache_key, response, ttl)
        self._record(target, wire, response)
        cost = self._count(answer)
        self._ctx.record_usage(
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            cost_usd=cost,
            model=self.model,
        )
        return answer

    async def _call(self, endpoint: Endpoint, wire: dict[str, Any]) -> ModelAnswer:
        """One request to the vendor, tried again while the trouble may pass."""
        target, options = endpoint.target, self._options
        breaker = CIRCUITS.breaker(target.provider, endpoint.base_url, target.model)
        client = endpoint.vendor.client(endpoint.api_key, endpoint.base_url)
        on_token = self._ctx.stream_token if options.stream else None
        attempts = options.retries + 1
        for attempt in range(1, attempts + 1):
            paused = breaker.paused_for()
            if paused is not None:
                raise ModelCallFailed(
                    f"calls to {endpoint.title} model '{target.model}' are paused for another "
                    f"{math.ceil(paused)} s: the last {breaker.failures} failed in a row (last: "
                    f"{breaker.last_failure}). Set a fallback model to keep working meanwhile."
                )
            try:
                answer = await endpoint.vendor.send(client, wire, options.timeout_s, on_token)
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                if failure.retryable:
                    breaker.failed(f"{failure.status or failure.kind} {failure.detail}".strip())
                wait = RETRY_POLICY.backoff(attempt)
                if failure.retry_after_s is not None:
                    wait = failure.retry_after_s
                if not failure.retryable or attempt == attempts or wait > RETRY_POLICY.max_wait_s:
                    raise ModelCallFailed(_describe(endpoint, failure, attempt, options)) from None
                self._ctx.log(
                    f"{endpoint.title} failed for model '{target.model}' "
                    f"({failure.status or failure.kind}: {failure.detail}); trying again in "
                    f"{wait:.2g} s (attempt {attempt + 1} of {attempts})",
                    level="warning",
                )
                await asyncio.sleep(wait)
            else:
                breaker.succeeded()
                return answer
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _record(self, target: Target, wire: dict[str, Any], response: dict[str, Any]) -> None:
        self._ctx.record_exchange(
            {
                "provider": target.provider,
                "model": target.model,
                "request": wire,
                "response": response,
            }
        )

    def _count(self, answer: ModelAnswer) -> float:
        """Add an answer's tokens and cost to the session's totals; returns its cost."""
        model = answer.model or self._targets[self._current].model
        cost = PRICES.cost_usd(model, answer.input_tokens, answer.output_tokens)
        if cost is None:
            cost = 0.0
            if model not in self._unpriced:
                self._unpriced.add(model)
                self._ctx.log(f"no price known for model {model}; its cost counts as 0")
        self.input_tokens += answer.input_tokens
        self.output_tokens += answer.output_tokens
        self.cost_usd += cost
        self.model = model
        return cost

    def _answered_without_call(self, answer: ModelAnswer) -> None:
        """A replayed or cached answer: the same result as before, but nothing was spent."""
        self._count(answer)
        self._ctx.record_usage(model=self.model)
        if self._options.stream and answer.text:
            self._ctx.stream_token(answer.text)


def _describe(endpoint: Endpoint, failure: Failure, attempts: int, options: CallOptions) -> str:
    """A failed call in plain words, naming the vendor, the model and where the key came from."""
    vendor, model, key = endpoint.title, endpoint.target.model, endpoint.key_source
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = f": {failure.detail}" if failure.detail else ""
    if failure.kind == "auth":
        return (
            f"{vendor} refused the API key from {key} (401 Unauthorized) for model "
            f"'{model}'{detail}. Check or replace the key."
        )
    if failure.kind == "forbidden":
        return (
            f"{vendor} does not let the API key from {key} use model '{model}' "
            f"(403 Forbidden){detail}."
        )
    if failure.kind == "not_found":
        return (
            f"{vendor} does not know the model '{model}' (404 Not Found, called with the key "
            f"from {key}){detail}. Check the model's name."
        )
    if failure.kind == "rate_limit":
        asked = ""
        if failure.retry_after_s is not None and failure.retry_after_s > RETRY_POLICY.max_wait_s:
            asked = (
                f" It asked to wait {failure.retry_after_s:.0f} s, longer than FlowLoom waits "
                f"({RETRY_POLICY.max_wait_s:.0f} s)."
            )
        return (
            f"{vendor} kept refusing calls to model '{model}' with 429 Too Many Requests (rate "
            f"limit of the key from {key}){tries}{detail}.{asked} Wait a little or raise the "
            "account's limits."
        )
    if failure.kind == "server":
        return f"{vendor} failed with a server error ({failure.status}) for model '{model}'{tries}{detail}."
    if failure.kind == "timeout":
        return (
            f"{vendor} did not answer within {options.timeout_s:g} s for model '{model}'{tries}. "
            "Raise the step's 'timeout_s' if the model needs longer."
        )
    if failure.kind == "connection":
        where = endpoint.base_url or "its usual address"
        return f"could not connect to {vendor} at {where} for model '{model}'{tries}{detail}."
    return f"{vendor} refused the request for model '{model}' ({failure.status}){detail}."
