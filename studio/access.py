"""Who may use the REST API: this machine, or whoever shows `FLOWLOOM_API_TOKEN`.

The REST API and `/metrics` can create and run flows, read what runs produced and store
credentials, so they are guarded (`ApiGuard`):

| `FLOWLOOM_API_TOKEN` | a call from this machine | a call from elsewhere |
| --- | --- | --- |
| unset | answered | 403, saying to set a token |
| set | needs `Authorization: Bearer <token>` (else 401) | the same |

Webhooks (`/hooks/…`) carry their own checks (a long secret token in each URL, the trigger's
`auth`); health checks (`/healthz`, `/readyz`) and the API's description (`/docs`,
`/openapi.json`, whose "Authorize" button takes the token) tell nothing secret. They stay
open: a
`flowloom serve` listening on every address (`FLOWLOOM_HOST=0.0.0.0`) to take webhooks from
the internet does not open its API with them. Behind a reverse proxy on the same machine,
calls count as from elsewhere only if the proxy passes on the caller's address
(`X-Forwarded-For`, which uvicorn reads from a proxy on 127.0.0.1); set a token there.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any, cast

from studio.webhooks import ASGIApp, Receive, Scope, Send, error_json, send_answer

#: Path prefixes the guard covers: the REST API and the metrics.
GUARDED = ("/api/", "/metrics")
#: How the OpenAPI description names the token (`describe_token`).
SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "FLOWLOOM_API_TOKEN: needed from other machines, and from every caller once "
    "it is set.",
}

_NO_TOKEN = error_json(
    "api_from_elsewhere",
    "The REST API answers only calls from this machine. To call it from elsewhere, start "
    "FlowLoom with FLOWLOOM_API_TOKEN set and send 'Authorization: Bearer <that token>'.",
)
_BAD_TOKEN = error_json(
    "unauthorized",
    "This call needs the API token: send 'Authorization: Bearer <FLOWLOOM_API_TOKEN>'.",
)


class ApiGuard:
    """ASGI: refuses guarded paths to callers the table above refuses; passes the rest on."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(GUARDED):
            if self._expected is not None:
                given = dict(scope["headers"]).get(b"authorization", b"")
                if not hmac.compare_digest(given, self._expected):
                    await send_answer(
                        send, 401, _BAD_TOKEN, [(b"www-authenticate", b'Bearer realm="FlowLoom"')]
                    )
                    return
            elif not from_this_machine(scope):
                await send_answer(send, 403, _NO_TOKEN)
                return
        await self.app(scope, receive, send)


def describe_token(app: Any) -> None:
    """Declare the API token in `app`'s OpenAPI description, so `/docs` can send it."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiToken"] = (
                SCHEME
            )
            schema["security"] = [{"apiToken": []}]
        return cast(dict[str, Any], app.openapi_schema)

    app.openapi = openapi


def loopback_host(host: str) -> bool:
    """Whether listening on `host` keeps a server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False


def from_this_machine(scope: Scope) -> bool:
    """Whether the call came over loopback (or a Unix socket, which has no address)."""
    client = scope.get("client")
    if not client:
        return True
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:  # not an address at all
        return False
