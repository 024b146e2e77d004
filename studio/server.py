"""`flowloom serve`: the REST API, health checks and run recovery, without the UI.

`create_app(settings)` builds the ASGI app; `mount(app, settings)` adds the same API and
runtime to another FastAPI app (the studio's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
import uvicorn
from fastapi import FastAPI

from engine.settings import Settings
from studio import __version__
from studio.api import health, install_error_handlers, router
from studio.runtime import Runtime

log = structlog.get_logger("flowloom.server")

DESCRIPTION = (
    "Design, store and run FlowLoom flows. Errors come back as "
    '`{"error": {"code", "message", "details"}}`.'
)


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Add the API, health checks and error answers to `app`, served by `runtime`."""
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health)


def create_app(settings: Settings) -> FastAPI:
    """The headless FlowLoom server: API and health checks; the runtime starts with it."""
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        log.info("FlowLoom server ready", url=f"http://{settings.host}:{settings.port}")
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="FlowLoom", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    mount(app, runtime)
    return app


def serve(settings: Settings) -> None:
    """Serve the headless app until stopped (Ctrl+C)."""
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
