"""Incoming webhooks: `POST /hooks/{token}` starts a run of an active flow.

The route is raw ASGI, answered before the API's and the UI's middleware (see `HookRoutes`):
a call is looked up by its token in memory (every active flow's webhook triggers, rebuilt
when a flow changes), rate-limited per token, read while counting bytes, checked (the
trigger's `auth`), parsed, and submitted to the runtime, which commits the run before the
answer goes out. What a caller gets:

| answer | when |
| --- | --- |
| 200 with the flow's `flow.respond` (status, body, headers), or its final output as JSON | sync mode, the run ended within the trigger's `timeout_s` |
| 200 `{"challenge"}` | Slack checking the URL (`url_verification`, signed; `slack` preset): no run |
| 202 `{"run_id", "status"}` | async mode (the run is stored), or a sync run still going at its timeout |
| 202 `{"run_id", "duplicate": true}` | a repeated Idempotency-Key / sender delivery id: no second run |
| 204 | an `OPTIONS` preflight from a web page the trigger's `allowed_origins` lets in (CORS) |
| 400 | a body that says it is JSON and is not (the message says where), a bad form body, a gzip body that cannot be unpacked |
| 401 | the trigger's `auth` check failed |
| 403 | a preflight from a web page the trigger's `allowed_origins` does not let in |
| 404 | no active flow has this token |
| 405 | a method other than GET, POST, PUT, PATCH, DELETE |
| 413 | a body over the trigger's `max_body_bytes` (10 MiB by default), also once unpacked |
| 415 | a body in a `Content-Encoding` other than gzip or deflate |
| 429 | over the token's rate; `Retry-After` says when to try again |
| 500 | sync mode, the run failed (the error names the step) |
| 503 | the flow behind the token was saved with problems and cannot run |

A call from a web page (one with an `Origin` header) that `allowed_origins` lets in gets
`Access-Control-Allow-Origin` on every answer, errors included, so the page can read it.

`/hooks/test/{token}` is the same for one call while the editor listens for it
(`WebhookService.listen_for_test`): it runs the flow's current document, active or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
import structlog
from pydantic import ValidationError

from engine import CompiledFlow, InvalidFlowError, RunResult
from nodes.telegram import TelegramTrigger, update_payload
from nodes.triggers import HeaderAuth, HmacAuth, WebhookTrigger
from storage import FlowRecord, StorageError
from storage.jsontext import dumps
from studio.webhook_auth import AuthFailed, check_header, check_signature

if TYPE_CHECKING:
    from studio.runtime import Runtime

log = structlog.get_logger("flowloom.webhooks")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/hooks/"
TEST_PREFIX = "/hooks/test/"
HOOK_TYPES = ("trigger.webhook", "trigger.telegram")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_ALLOWED_METHODS = ", ".join(sorted(METHODS | {"OPTIONS"})).encode()
#: `allowed_origins` of a trigger that lets every web page in ("*").
ANY_ORIGIN: frozenset[str] = frozenset({"*"})
#: How long a browser may keep a preflight's answer, in seconds.
PREFLIGHT_MAX_AGE = b"600"
#: How long a looked-up credential is used before it is read again (a changed one counts
#: after this long at most).
CREDENTIAL_TTL_S = 5.0
MAX_KEY_CHARS = 200
TEST_LISTEN_S = 120.0

_JSON = (b"content-type", b"application/json")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


@dataclass(slots=True)
class TokenBucket:
    """`rate` calls a second on average, `burst` at once."""

    rate: float
    burst: float
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> float:
        """0 when a call may go ahead (and counts it), else the seconds until one may."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate


@dataclass(slots=True)
class HookTarget:
    """One listening trigger: what a call to its token runs, and how it is checked."""

    token: str
    flow: FlowRecord
    node_id: str
    node_type: str
    compiled: CompiledFlow | None
    problem: str | None
    response: str = "async"
    timeout_s: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    auth: HeaderAuth | HmacAuth | None = None
    telegram_credential: str | None = None
    bucket: TokenBucket | None = None
    #: The web pages (origins) that may call it from a browser; `ANY_ORIGIN` for every one.
    origins: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TestCall:
    """What one call to a test URL brought: the trigger's payload and the run it started."""

    payload: Any
    run_id: str | None
    status: int


class HookError(Exception):
    """An answer other than a run: status, stable code, message for the caller."""

    def __init__(
        self, status: int, code: str, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, list(headers)


class WebhookService:
    """Answers webhook calls for a `Runtime` (its `webhooks`)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        settings = runtime.settings
        self._rate = float(settings.webhook_rate_per_s)
        self._burst = float(settings.webhook_burst)
        self._key_ttl_s = float(settings.webhook_idempotency_ttl_s)
        self._targets: dict[str, HookTarget] = {}
        self._tokens: dict[str, dict[str, str]] = {}  # flow id -> node id -> token
        self._buckets: dict[str, TokenBucket] = {}
        self._credentials: dict[str, tuple[float, dict[str, str] | None]] = {}
        self._listening: dict[tuple[str, str], list[asyncio.Future[TestCall]]] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        # The flow as its last change left it (None: deleted), so that a slow `_listen`
        # never installs a version a later change replaced or deactivated.
        self._latest: dict[str, FlowRecord | None] = {}

    # -- what listens -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for every active flow's webhook triggers; follow flows as they change."""
        db = self._runtime.db
        db.flows.watch(self._flow_changed)
        for flow in await db.flows.active():
            self._latest.setdefault(flow.id, flow)
            await self._listen(flow)

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        for futures in self._listening.values():
            for future in futures:
                future.cancel()

    def targets(self) -> list[HookTarget]:
        return list(self._targets.values())

    async def tokens(self, flow: FlowRecord) -> dict[str, str]:
        """node id → token of each webhook-like trigger of the flow (tokens made if missing)."""
        known = self._tokens.setdefault(flow.id, {})
        for node in _hook_nodes(flow):
            if node["id"] not in known:
                known[node["id"]] = await self._runtime.db.triggers.webhook_token(
                    flow.id, node["id"]
                )
        return {node["id"]: known[node["id"]] for node in _hook_nodes(flow)}

    async def refresh(self, flow: FlowRecord) -> None:
        """Listen for `flow` as it is now (activation awaits this before it answers)."""
        self._latest[flow.id] = flow
        if flow.active:
            await self._listen(flow)
        else:
            self._forget(flow.id)

    async def _listen(self, flow: FlowRecord) -> None:
        await self.tokens(flow)
        latest = self._latest.get(flow.id, flow)
        if latest is not None and latest.active:  # what the flow is now, not then
            self._install(latest, self._tokens.get(flow.id, {}))

    def _install(self, flow: FlowRecord, tokens: dict[str, str]) -> None:
        self._forget(flow.id)
        compiled: CompiledFlow | None = None
        problem = None
        try:
            compiled = self._runtime.compile(flow)
        except InvalidFlowError as exc:
            problem = str(exc)
            log.warning("an active flow cannot run; its webhooks answer 503", flow_id=flow.id)
        for node in _hook_nodes(flow):
            token = tokens.get(node["id"])
            if token is not None:
                target = self._target(flow, node, token, compiled, problem)
                target.bucket = self._buckets.setdefault(
                    token, TokenBucket(self._rate, self._burst)
                )
                self._targets[token] = target

    def _forget(self, flow_id: str) -> None:
        for token in self._tokens.get(flow_id, {}).values():
            self._targets.pop(token, None)

    def _flow_changed(self, flow_id: str, flow: FlowRecord | None) -> None:
        """A flow was saved, (de)activated or deleted: a deactivated flow stops at once."""
        self._latest[flow_id] = flow
        if flow is None:
            self._forget(flow_id)
            self._tokens.pop(flow_id, None)
            return
        if not flow.active:
            self._forget(flow_id)
            return
        known = self._tokens.get(flow_id, {})
        if all(node["id"] in known for node in _hook_nodes(flow)):
            self._install(flow, known)
        else:  # a new trigger node needs its token made first
            self._in_background(self._listen(flow))

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _target(
        self,
        flow: FlowRecord,
        node: dict[str, Any],
        token: str,
        compiled: CompiledFlow | None,
        problem: str | None,
    ) -> HookTarget:
        target = HookTarget(token, flow, node["id"], node["type"], compiled, problem)
        try:
            if node["type"] == "trigger.telegram":
                telegram = TelegramTrigger.Config.model_validate(node.get("config") or {})
                target.telegram_credential = telegram.credential
            else:
                config = WebhookTrigger.Config.model_validate(node.get("config") or {})
                target.response = config.response
                target.timeout_s = config.timeout_s
                target.max_body_bytes = config.max_body_bytes
                target.auth = config.auth
                target.origins = _origins(config.allowed_origins)
        except ValidationError as exc:
            target.compiled = None
            target.problem = target.problem or f"the trigger's settings are invalid: {exc}"
        return target

    # -- test calls from the editor -----------------------------------------------------------

    async def test_path(self, flow_id: str, node_id: str) -> str:
        """The path (`/hooks/test/<token>`) the editor shows for a test call to this trigger."""
        token = await self._runtime.db.triggers.webhook_token(flow_id, node_id)
        self._tokens.setdefault(flow_id, {})[node_id] = token
        return TEST_PREFIX + token

    async def listen_for_test(
        self, flow_id: str, node_id: str, timeout_s: float = TEST_LISTEN_S
    ) -> TestCall | None:
        """Wait up to `timeout_s` for one call to the trigger's test URL (see `test_path`).

        That call runs the flow's current document even if the flow is not active; this
        returns what it brought (the payload) and the run's id, or None if none came.
        """
        future: asyncio.Future[TestCall] = asyncio.get_running_loop().create_future()
        waiting = self._listening.setdefault((flow_id, node_id), [])
        waiting.append(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            waiting.remove(future)
            if not waiting:
                self._listening.pop((flow_id, node_id), None)

    async def _test_target(self, token: str) -> HookTarget:
        found = await self._runtime.db.triggers.find_webhook(token)
        if found is None or found not in self._listening:
            raise HookError(
                404,
                "not_listening",
                "Nothing is listening on this test URL; press 'Listen for a test call' in the "
                "editor first.",
            )
        flow = await self._runtime.db.flows.get(found[0])
        node = next((n for n in _hook_nodes(flow) if n["id"] == found[1]), None)
        if node is None:
            raise HookError(404, "not_found", "This trigger is no longer in the flow.")
        compiled: CompiledFlow | None = None
        problem = None
        try:
            compiled = self._runtime.compile(flow)
        except InvalidFlowError as exc:
            problem = str(exc)
        return self._target(flow, node, token, compiled, problem)

    # -- one call -----------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP call under /hooks/ (each answer counted in the runtime's metrics)."""
        count = self._runtime.metrics.webhook_request
        path: str = scope["path"]
        cors: list[tuple[bytes, bytes]] = []
        try:
            if path.startswith(TEST_PREFIX):
                target = await self._test_target(path[len(TEST_PREFIX) :])
                cors = _cors(target, scope)
                status, body, headers, payload, run_id = await self._call(
                    target, scope, receive, test=True
                )
                if scope["method"] != "OPTIONS":  # a preflight is not the call itself
                    self._tell_listeners(target, TestCall(payload, run_id, status))
            else:
                target_or_none = self._targets.get(path[len(PREFIX) :])
                if target_or_none is None:
                    count(404)
                    await send_answer(send, 404, _NOT_FOUND)
                    return
                cors = _cors(target_or_none, scope)
                status, body, headers, _, _ = await self._call(
                    target_or_none, scope, receive, test=False
                )
        except HookError as error:
            count(error.status)
            await send_answer(
                send, error.status, error_json(error.code, error.message), error.headers + cors
            )
            return
        except Exception:
            log.exception("webhook call failed inside FlowLoom", path=path[:24] + "…")
            count(500)
            await send_answer(
                send,
                500,
                error_json(
                    "internal_error", "FlowLoom failed while taking this call; it was logged."
                ),
                cors,
            )
            return
        count(status)
        await send_answer(send, status, body, headers + cors if cors else headers)

    def _tell_listeners(self, target: HookTarget, call: TestCall) -> None:
        for future in self._listening.get((target.flow.id, target.node_id), []):
            if not future.done():
                future.set_result(call)

    async def _call(
        self, target: HookTarget, scope: Scope, receive: Receive, *, test: bool
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], Any, str | None]:
        method: str = scope["method"]
        if method not in METHODS:
            if method == "OPTIONS":
                return _preflight(target, scope)
            raise HookError(
                405,
                "method_not_allowed",
                f"Webhooks take {', '.join(sorted(METHODS))}, not {method}.",
                [(b"allow", _ALLOWED_METHODS)],
            )
        if not test and target.bucket is not None:
            wait = target.bucket.take(time.monotonic())
            if wait:
                raise HookError(
                    429,
                    "rate_limited",
                    "Too many calls to this webhook; try again after the Retry-After seconds.",
                    [(b"retry-after", str(max(1, math.ceil(wait))).encode())],
                )
        headers = _headers(scope)
        raw = await _read_body(receive, headers, target.max_body_bytes)
        if target.compiled is None:
            raise HookError(
                503,
                "flow_cannot_run",
                f"The flow behind this webhook cannot run: {target.problem}",
            )
        if target.node_type == "trigger.telegram":
            return await self._telegram(target, raw, headers, test)

        if target.auth is not None:
            await self._check_auth(target.auth, raw, headers)  # signed as it was sent
        if "content-encoding" in headers:
            raw = _unpacked(raw, headers["content-encoding"], target.max_body_bytes)
        body = _parse_body(raw, headers.get("content-type", ""))
        if _slack_url_check(target, body):  # signed by Slack: it wants its challenge back
            return 200, _dumps({"challenge": body["challenge"]}), [], body, None
        if isinstance(target.auth, HeaderAuth):
            headers[target.auth.name.lower()] = "***"  # the secret is not kept with the run
        payload = {
            "body": body,
            "headers": headers,
            "query": _query(scope.get("query_string", b"")),
            "method": method,
        }
        key = None if test else _delivery_key(headers, body, target)
        run_id, fresh = await self._submit(target, payload, key)
        if not fresh:
            return 202, _dumps({"run_id": run_id, "duplicate": True}), _REPLAYED, payload, run_id
        if target.response == "async":
            return 202, _dumps({"run_id": run_id, "status": "queued"}), [], payload, run_id
        result = await self._runtime.wait(run_id, target.timeout_s, recorded=False)
        status, answer, extra = _sync_answer(run_id, result)
        return status, answer, extra, payload, run_id

    async def _telegram(
        self, target: HookTarget, raw: bytes, headers: dict[str, str], test: bool
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], Any, str | None]:
        if target.telegram_credential:
            fields = await self._credential(target.telegram_credential)
            expected = (fields or {}).get("secret_token", "")
            try:
                check_header(headers, "X-Telegram-Bot-Api-Secret-Token", expected)
            except AuthFailed as exc:
                raise HookError(401, "unauthorized", str(exc)) from None
        update = _parse_body(raw, "application/json")
        if not isinstance(update, dict):
            raise HookError(400, "not_an_update", "A Telegram update is a JSON object.")
        payload = update_payload(update)
        update_id = update.get("update_id")
        key = None if test or update_id is None else f"telegram:{update_id}"
        run_id, _ = await self._submit(target, payload, key)
        # Telegram only wants a 200 quickly (it retries anything else); the run goes on.
        return 200, _dumps({"ok": True, "run_id": run_id}), [], payload, run_id

    async def _submit(self, target: HookTarget, payload: Any, key: str | None) -> tuple[str, bool]:
        runtime = self._runtime
        try:
            if key is None:
                record = await runtime.submit(target.flow, payload, trigger=target.node_id)
                return record.id, True
            result: tuple[str, bool] = await runtime.submit_once(
                target.flow, payload, trigger=target.node_id, key=key, ttl_s=self._key_ttl_s
            )
            return result
        except InvalidFlowError as exc:
            raise HookError(503, "flow_cannot_run", f"The flow cannot run: {exc}") from None
        except StorageError as exc:
            log.error("could not store a webhook's run", error=str(exc), flow_id=target.flow.id)
            raise HookError(
                503, "not_stored", "The run could not be stored; nothing was started. Try again."
            ) from None

    async def _check_auth(
        self, auth: HeaderAuth | HmacAuth, raw: bytes, headers: dict[str, str]
    ) -> None:
        fields = await self._credential(auth.credential)
        try:
            if fields is None:
                log.warning("a webhook's credential is missing", credential=auth.credential)
                raise AuthFailed("The webhook cannot check calls: its credential is missing.")
            if isinstance(auth, HeaderAuth):
                check_header(headers, auth.name, fields.get("value", ""))
            else:
                check_signature(auth.preset, fields.get("secret", ""), raw, headers)
        except AuthFailed as exc:
            raise HookError(401, "unauthorized", str(exc)) from None

    async def _credential(self, name: str) -> dict[str, str] | None:
        now = time.monotonic()
        cached = self._credentials.get(name)
        if cached is not None and now - cached[0] < CREDENTIAL_TTL_S:
            return cached[1]
        try:
            fields: dict[str, str] | None = await self._runtime.db.credentials.get_credential(name)
        except KeyError:
            fields = None
        self._credentials[name] = (now, fields)
        return fields

    def forget_credentials(self) -> None:
        """Read credentials again on their next use (after one changed)."""
        self._credentials.clear()


class HookRoutes:
    """ASGI: `/hooks/…` goes to the webhook service; everything else to `app`.

    It sits outside every middleware, so a webhook call costs no more than it must.
    """

    def __init__(self, app: ASGIApp, service: WebhookService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await self.service.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)


# -- calls from web pages (CORS) --------------------------------------------------------------


def _origins(allowed: str) -> frozenset[str]:
    """A trigger's `allowed_origins` setting as a set (`ANY_ORIGIN` for "*")."""
    origins = frozenset(o.strip().rstrip("/") for o in allowed.split(",") if o.strip())
    return ANY_ORIGIN if "*" in origins else origins


def _header(scope: Scope, name: bytes) -> bytes | None:
    """One request header, raw (the call's headers dict is made later, and only if needed)."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _cors(target: HookTarget, scope: Scope) -> list[tuple[bytes, bytes]]:
    """The CORS headers of an answer to this call: none unless a web page it lets in made it."""
    if not target.origins:
        return []
    origin = _header(scope, b"origin")
    if origin is None:
        return []
    if target.origins is ANY_ORIGIN:
        return [(b"access-control-allow-origin", b"*")]
    if origin.decode("latin-1") in target.origins:
        return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]
    return []


def _preflight(
    target: HookTarget, scope: Scope
) -> tuple[int, bytes, list[tuple[bytes, bytes]], Any, str | None]:
    """A browser asks whether its page may call: 204 if `allowed_origins` lets it in."""
    if not _cors(target, scope):
        origin = _header(scope, b"origin")
        page = origin.decode("latin-1") if origin is not None else "a page"
        raise HookError(
            403,
            "origin_not_allowed",
            f"This webhook does not take calls from web pages at {page}: add it to the "
            "trigger's 'allowed_origins'.",
        )
    asked = _header(scope, b"access-control-request-headers")
    headers = [
        (b"access-control-allow-methods", _ALLOWED_METHODS),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE),
    ]
    if asked:
        headers.append((b"access-control-allow-headers", asked))
    return 204, b"", headers, None, None


# -- reading a call ---------------------------------------------------------------------------


def _hook_nodes(flow: FlowRecord) -> list[dict[str, Any]]:
    return [
        node
        for node in flow.document.get("nodes", [])
        if isinstance(node, dict) and node.get("type") in HOOK_TYPES and "id" in node
    ]


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The body, counted as it comes: 413 as soon as it is over `limit` (never read further)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks, size = [body], len(body)
    while True:
        if size > limit:
            raise _too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HookError(400, "disconnected", "The caller went away before sending the body.")
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            break
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


def _unpacked(raw: bytes, encoding: str, limit: int) -> bytes:
    """A body sent compressed (`Content-Encoding: gzip` or `deflate`), unpacked: 413 as soon
    as it unpacks to more than `limit` bytes (a small body may unpack to a huge one)."""
    kind = encoding.strip().lower()
    if kind in ("", "identity"):
        return raw
    if kind in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif kind == "deflate":  # zlib-wrapped, as HTTP means it (raw deflate is read too)
        wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        raise HookError(
            415,
            "unsupported_encoding",
            f"The body is encoded as '{encoding}'; webhooks read bodies sent plain, gzip or "
            "deflate.",
        )
    unpacker = zlib.decompressobj(wbits)
    try:
        body = unpacker.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise HookError(
            400, "malformed_body", f"The body says it is {kind} but cannot be unpacked: {exc}."
        ) from None
    if len(body) > limit or unpacker.unconsumed_tail:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> HookError:
    return HookError(
        413,
        "body_too_large",
        f"The body is larger than this webhook accepts ({limit:,} bytes).",
        [(b"connection", b"close")],
    )


_LONG_NUMBER = re.compile(rb"\d{20}")


def _parse_body(raw: bytes, content_type: str) -> Any:
    """JSON when the content type says so, form fields for forms, else the text."""
    if not raw:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        if _LONG_NUMBER.search(raw) is None:  # orjson would read a 20-digit integer as a float
            with contextlib.suppress(orjson.JSONDecodeError):
                return orjson.loads(raw)  # the fast way; what it refuses is read carefully
        try:
            return json.loads(raw)  # NaN and lone surrogates are accepted here too
        except UnicodeDecodeError:
            raise HookError(400, "malformed_json", "The JSON body is not UTF-8 text.") from None
        except json.JSONDecodeError as exc:
            raise HookError(
                400,
                "malformed_json",
                f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno} (character {exc.pos}).",
            ) from None
    text = raw.decode("utf-8", errors="replace")
    if kind == "application/x-www-form-urlencoded":
        return _query(raw)
    if kind == "multipart/form-data":
        return _multipart(raw, content_type)
    return text


def _query(raw: bytes) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not raw:
        return values
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name in values:
            existing = values[name]
            values[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            values[name] = value
    return values


def _multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """Form fields of a multipart body; a file field becomes its name, type and size."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        raise HookError(400, "malformed_form", "The multipart form body cannot be read.")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        content = part.get_payload(decode=True) or b""
        assert isinstance(content, bytes)
        filename = part.get_filename()
        if filename is not None:
            fields[name] = {
                "filename": filename,
                "content_type": part.get_content_type(),
                "size": len(content),
            }
        else:
            fields[name] = content.decode(part.get_content_charset() or "utf-8", "replace")
    return fields


def _slack_url_check(target: HookTarget, body: Any) -> bool:
    """Whether this is Slack checking the URL (Events API setup): with the `slack` preset,
    the answer is its `challenge`, and no run starts."""
    return (
        isinstance(target.auth, HmacAuth)
        and target.auth.preset == "slack"
        and isinstance(body, dict)
        and body.get("type") == "url_verification"
        and isinstance(body.get("challenge"), str)
    )


def _delivery_key(headers: dict[str, str], body: Any, target: HookTarget) -> str | None:
    """What makes a delivery the same as an earlier one: Idempotency-Key, else the sender's
    own delivery id (GitHub's X-GitHub-Delivery, a Stripe event's id, a Slack event_id)."""
    key = headers.get("idempotency-key") or headers.get("x-github-delivery")
    if key:
        return key.strip()[:MAX_KEY_CHARS]
    if isinstance(body, dict):
        preset = target.auth.preset if isinstance(target.auth, HmacAuth) else None
        event_id = body.get("id")
        if isinstance(event_id, str) and (preset == "stripe" or body.get("object") == "event"):
            return f"stripe:{event_id[:MAX_KEY_CHARS]}"
        slack_event = body.get("event_id")
        if isinstance(slack_event, str) and preset == "slack":
            return f"slack:{slack_event[:MAX_KEY_CHARS]}"
    return None


# -- answering --------------------------------------------------------------------------------


def _sync_answer(
    run_id: str, result: RunResult | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    if result is None:  # still running at the trigger's timeout: it goes on
        return 202, _dumps({"run_id": run_id, "status": "running"}), []
    if result.response is not None:
        return _responded(result.response)
    if result.status == "succeeded":
        return 200, _dumps(result.output), []
    error = result.error or {}
    return (
        500,
        _dumps(
            {
                "error": {
                    "code": f"run_{result.status}",
                    "message": error.get("message") or f"The run {result.status}.",
                    "details": {"run_id": run_id, "node_id": error.get("node_id")},
                }
            }
        ),
        [],
    )


def _responded(response: dict[str, Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The answer a `flow.respond` step set: text as text, anything else as JSON."""
    body = response.get("body")
    headers = [
        (str(name).lower().encode("latin-1"), str(value).encode("latin-1"))
        for name, value in (response.get("headers") or {}).items()
        if str(name).lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    has_type = any(name == b"content-type" for name, _ in headers)
    if isinstance(body, str):
        encoded = body.encode("utf-8")
        if not has_type:
            headers.append(_TEXT)
    else:
        encoded = _dumps(body)
        if not has_type:
            headers.append(_JSON)
    return int(response.get("status") or 200), encoded, headers


def _dumps(value: Any) -> bytes:
    return dumps(value).encode()


def error_json(code: str, message: str) -> bytes:
    """The API's error shape, `{"error": {"code", "message", "details": null}}`, as JSON."""
    return _dumps({"error": {"code": code, "message": message, "details": None}})


_NOT_FOUND = error_json(
    "not_found", "No active flow listens on this webhook URL (check the URL, or activate the flow)."
)
_REPLAYED = [(b"idempotent-replayed", b"true")]
_WITHOUT_CONTENT = frozenset({204, 304})


async def send_answer(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Send a whole answer; JSON unless `headers` name another content type. A 204 or 304
    answer has no content (HTTP forbids it; sent anyway, it would garble the connection)."""
    if status in _WITHOUT_CONTENT:
        kept = [h for h in headers if h[0] not in (b"content-type", b"content-length")]
        await send({"type": "http.response.start", "status": status, "headers": kept})
        await send({"type": "http.response.body", "body": b""})
        return
    extra = list(headers)
    if not any(name == b"content-type" for name, _ in extra):
        extra.append(_JSON)
    extra.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": extra})
    await send({"type": "http.response.body", "body": body})
