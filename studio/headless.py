"""`flowloom serve`: webhooks, schedules, the REST API and health checks, without the UI.

Webhooks are answered as soon as the runtime has started; the REST API (FastAPI and its
models, a good part of the start-up time) is imported on a worker thread meanwhile and
built when it is first needed. A webhook sender waiting for a restarted server so gets its
answer sooner, and nothing else changes: `/api/v1/…`, `/healthz`, `/readyz`, `/metrics` and
`/docs` are the app `studio.server.api_app` makes, served by the same runtime.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn

from engine.settings import Settings
from studio.runtime import Runtime
from studio.webhooks import PREFIX

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger("flowloom.server")


class HeadlessApp:
    """The ASGI app of `flowloom serve` (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        self._api: ASGIApp | None = None
        self._building: asyncio.Task[ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"].startswith(PREFIX):
            await self.runtime.webhooks.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            api = self._api or await self._build_api()
            await api(scope, receive, send)

    def _start_building(self) -> asyncio.Task[ASGIApp]:
        if self._building is None:
            self._building = asyncio.create_task(self._import_and_build())
            self._building.add_done_callback(_log_failure)
        return self._building

    async def _build_api(self) -> ASGIApp:
        building = self._start_building()
        try:
            return await asyncio.shield(building)
        except Exception:
            if self._building is building:
                self._building = None  # the next request tries again
            raise

    async def _import_and_build(self) -> ASGIApp:
        # The import runs on a thread, so webhook calls are answered meanwhile.
        server = await asyncio.to_thread(importlib.import_module, "studio.server")
        self._api = server.api_app(self.runtime)
        return self._api

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            await self.runtime.start()
        except Exception as exc:  # uvicorn logs the message and exits
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        self._start_building()  # soon after start, not at the first API call
        # What start-up built lives as long as the process: keep the collector off it
        # (fewer and shorter collection pauses under load).
        gc.freeze()
        settings = self.settings
        log.info("FlowLoom server ready", url=f"http://{settings.host}:{settings.port}")
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            if self._building is not None and not self._building.done():
                self._building.cancel()
            await self.runtime.stop()
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the REST API could not be built", error=str(task.exception()))


def serve(settings: Settings) -> None:
    """Serve the headless app until stopped (Ctrl+C)."""
    uvicorn.run(
        HeadlessApp(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
