"""HTTP: call a web address and hand on its answer."""

from __future__ import annotations

import errno
import json
import socket
import ssl
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from engine.errors import NodeError
from engine.node import NodeConfig, NodeType, StepContext
from nodes.values import ScalarText, describe_value

QueryValue = str | int | float | bool | None
SNIPPET_CHARS = 200


class HttpRequest(NodeType):
    type = "http.request"
    title = "HTTP request"
    icon = "http"
    category = "HTTP"
    description = "Calls a web address (an API or a web page) and hands on its answer."

    class Config(NodeConfig):
        method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
            default="GET",
            description="What to ask the server: GET to read, POST to send, and so on.",
        )
        url: str = Field(
            description="The web address to call, starting with http:// or https://.",
        )
        headers: dict[str, ScalarText] = Field(
            default_factory=dict,
            description="HTTP headers to send, by name, for example Authorization.",
        )
        query: dict[str, QueryValue | list[QueryValue]] = Field(
            default_factory=dict,
            description="Values added to the address after '?', by name.",
        )
        body: Any = Field(
            default=None,
            description=(
                "What to send: an object or a list is sent as JSON, anything else as text."
            ),
        )
        timeout_s: float = Field(
            default=30,
            gt=0,
            le=3600,
            description="How many seconds to wait for the answer before giving up.",
        )
        fail_on_status: bool = Field(
            default=True,
            description=(
                "Stop with an error when the server answers with a failure status "
                "(anything but 2xx); when off, the answer is handed on as it is."
            ),
        )
        follow_redirects: bool = Field(
            default=True,
            description="Follow the server's redirects to the final address, as a browser does.",
        )

        @field_validator("query", mode="before")
        @classmethod
        def _flat_query(cls, query: Any) -> Any:
            if not isinstance(query, dict):
                return query
            for name, value in query.items():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, dict | list):
                        raise ValueError(
                            f"The query value '{name}' must be text, a number, true/false or a "
                            f"list of those, but it holds {describe_value(item)}."
                        )
            return query

        @field_validator("method", mode="before")
        @classmethod
        def _upper_method(cls, method: Any) -> Any:
            return method.upper() if isinstance(method, str) else method

        @field_validator("url")
        @classmethod
        def _web_address(cls, url: str) -> str:
            url = url.strip()
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL as exc:
                raise ValueError(f"'{url}' is not a web address: {exc}.") from None
            if parsed.scheme not in ("http", "https"):
                raise ValueError(f"The address must start with http:// or https://, not '{url}'.")
            if not parsed.host:
                raise ValueError(f"The address '{url}' has no server name.")
            return url

    async def run(self, ctx: StepContext, config: Config) -> Any:
        url = httpx.URL(config.url)
        if config.query:
            url = url.copy_merge_params(config.query)
        headers = httpx.Headers(config.headers)
        content: str | None = None
        if isinstance(config.body, dict | list):
            content = json.dumps(config.body, ensure_ascii=False)
            headers.setdefault("content-type", "application/json")
        elif config.body is not None:
            content = config.body if isinstance(config.body, str) else json.dumps(config.body)
            headers.setdefault("content-type", "text/plain; charset=utf-8")

        try:
            response = await ctx.http.request(
                config.method,
                url,
                headers=headers,
                content=content,
                timeout=config.timeout_s,
                follow_redirects=config.follow_redirects,
            )
        except httpx.ConnectTimeout:
            raise NodeError(
                f"Could not connect to {url} within {config.timeout_s:g} seconds."
            ) from None
        except httpx.TimeoutException:
            raise NodeError(f"No answer from {url} within {config.timeout_s:g} seconds.") from None
        except httpx.ConnectError as exc:
            raise NodeError(f"Could not connect to {url}: {_connect_reason(exc)}") from None
        except httpx.TooManyRedirects:
            raise NodeError(f"{url} redirected too many times; check the address.") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise NodeError(f"The request to {url} failed: {reason}") from None

        body = _parsed_body(response)
        if config.fail_on_status and not response.is_success:
            snippet = _snippet(response)
            raise NodeError(
                f"{config.method} {url} answered {response.status_code} {response.reason_phrase}"
                + (f": {snippet}" if snippet else ".")
            )
        return {"status": response.status_code, "headers": dict(response.headers), "body": body}


def _parsed_body(response: httpx.Response) -> Any:
    """The answer's body: parsed when the server says it is JSON, else text."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return response.json()
        except ValueError:
            pass  # a server that says JSON but sends something else: hand on the text
    return response.text


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


def _connect_reason(exc: httpx.ConnectError) -> str:
    """Why a connection failed, in plain words instead of a socket error number."""
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing is listening there)."
        if isinstance(cause, socket.gaierror):
            return "the server name could not be found."
        if isinstance(cause, ssl.SSLError):
            return f"the secure (https) connection could not be set up: {cause}."
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "the network or the server cannot be reached."
    return f"{exc}." if str(exc) else "the connection failed."
