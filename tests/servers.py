"""Real HTTP servers on loopback for tests, each in a background thread.

`EchoServer` answers a few fixed paths and records every request it sees, with the client's
TCP port, so a test can tell how many connections the requests came over.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qsl

import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    query: str
    client_port: int


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class LoopbackServer:
    """An ASGI app served by uvicorn in a background thread on 127.0.0.1 and a free port."""

    def __init__(self, app: Any, *, name: str, **config: Any) -> None:
        self.name = name
        # proto IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; without it
        # Nagle's algorithm meets delayed ACKs and every answer waits ~40 ms
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {
            "log_level": "warning",
            "lifespan": "off",
            "loop": "asyncio",
            "timeout_graceful_shutdown": 1,
            **config,
        }
        self._server = uvicorn.Server(uvicorn.Config(app, **settings))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class EchoServer(LoopbackServer):
    """A tiny ASGI app served by uvicorn on 127.0.0.1 and a free port.

    Paths:
    - `/echo`: answers JSON `{method, path, query, headers, body, json}` describing the request;
    - `/text`: answers `text/plain` "plain words";
    - `/status/<code>`: answers that status with a text body `"status <code> body"`;
    - `/slow?seconds=<s>`: answers `{"slept": s}` after that long;
    - `/says-json-but-is-not`: `application/json` with a body that is not JSON;
    - `/redirect?to=<path>`: answers 302 Found pointing at that path.
    """

    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        super().__init__(self._app, name="test HTTP server", interface="asgi3", http="h11")

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def seen(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    async def _app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path: str = scope["path"]
        query = scope["query_string"].decode("latin-1")
        with self._lock:
            self.requests.append(SeenRequest(scope["method"], path, query, scope["client"][1]))

        if path == "/echo":
            text = body.decode("utf-8", "replace")
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            answer = {
                "method": scope["method"],
                "path": path,
                "query": dict(parse_qsl(query, keep_blank_values=True)),
                "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                "body": text,
                "json": parsed,
            }
            await _answer(send, 200, json.dumps(answer).encode(), "application/json")
        elif path == "/text":
            await _answer(send, 200, b"plain words", "text/plain; charset=utf-8")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            await _answer(send, code, f"status {code} body".encode(), "text/plain")
        elif path == "/slow":
            seconds = float(dict(parse_qsl(query)).get("seconds", "1"))
            await asyncio.sleep(seconds)
            await _answer(send, 200, json.dumps({"slept": seconds}).encode(), "application/json")
        elif path == "/redirect":
            location = dict(parse_qsl(query)).get("to", "/")
            await _answer(send, 302, b"moved", "text/plain", [(b"location", location.encode())])
        elif path == "/says-json-but-is-not":
            await _answer(send, 200, b"<html>oops</html>", "application/json")
        else:
            await _answer(send, 404, b"no such path", "text/plain")


async def _answer(
    send: Any,
    status: int,
    body: bytes,
    content_type: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-test-server", b"echo"),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
