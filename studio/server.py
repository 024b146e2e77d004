"""The REST API, webhooks, schedules, health checks and run recovery as a FastAPI app.

`api_app(runtime)` builds it for a runtime its caller starts and stops (`flowloom serve`'s
HeadlessApp, studio/headless.py); `mount(app, runtime)` adds the API, webhook route and
runtime to another FastAPI app (the studio's).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response

from engine.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from studio import __version__
from studio.access import ApiGuard, describe_token
from studio.api import health, install_error_handlers, router
from studio.runtime import Runtime
from studio.stats_api import stats
from studio.webhooks import HookRoutes

DESCRIPTION = (
    "Design, store and run FlowLoom flows. Errors come back as "
    '`{"error": {"code", "message", "details"}}`.'
)


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Add the API, health checks, error answers and `/hooks/` to `app`, served by `runtime`."""
    app.state.runtime = runtime
    _outside_middleware(app, runtime)
    describe_token(app)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(stats)
    app.include_router(health)
    app.add_api_route(
        "/metrics", _metrics, methods=["GET"], tags=["health"], response_class=Response
    )


def _outside_middleware(app: FastAPI, runtime: Runtime) -> None:
    """Route `/hooks/…` to the webhook service before any middleware (the UI's too) runs,
    and guard the API (`ApiGuard`): the ASGI stack Starlette builds on the first call gets
    both around it."""
    build = app.build_middleware_stack
    token = runtime.settings.api_token

    def build_with_hooks() -> Any:
        guarded = ApiGuard(build(), token.get_secret_value() if token else None)
        return HookRoutes(guarded, runtime.webhooks)

    app.build_middleware_stack = build_with_hooks  # type: ignore[method-assign]


async def _metrics(request: Request) -> Response:
    """Every metric in Prometheus text format."""
    runtime: Runtime = request.app.state.runtime
    return Response(runtime.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


def api_app(runtime: Runtime) -> FastAPI:
    """The API, health checks and `/hooks/` served by `runtime`, which the caller starts
    and stops."""
    app = FastAPI(title="FlowLoom", version=__version__, description=DESCRIPTION)
    mount(app, runtime)
    return app
