"""The studio web app: NiceGUI pages and the REST API, served by one uvicorn process.

`build_studio(settings)` routes every page and mounts the API on NiceGUI's app;
`run_studio(settings, host, port)` does that and serves until stopped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys

import structlog
from nicegui import app, core, ui

from engine.settings import Settings
from studio.access import loopback_host
from studio.components.layout import page_frame
from studio.components.styles import link_prebuilt_tailwind
from studio.pages import dashboard, editor, flows, runs, settings_page
from studio.runtime import Runtime
from studio.server import mount

log = structlog.get_logger(__name__)

NATIVE_HINT = "pip install 'flowloom[native]'"
STARTUP_WAIT_S = 60.0
MAX_MESSAGE_BYTES = 32 * 2**20


def build_studio(settings: Settings) -> Runtime:
    """Route the pages, link their stylesheet and mount the API on NiceGUI's app.

    The runtime starts with the app.
    """
    runtime = Runtime(settings)
    started = asyncio.Event()

    async def start() -> None:
        await runtime.start()
        started.set()

    async def until_started() -> None:
        """Pages wait for the database (NiceGUI starts the runtime in the background)."""
        await asyncio.wait_for(started.wait(), STARTUP_WAIT_S)

    mount(app, runtime)
    link_prebuilt_tailwind()  # the pages' Tailwind classes, built ahead: run with tailwind=False
    # the canvas sends whole flow documents; large flows outgrow socket.io's 1 MB default
    core.sio.eio.max_http_buffer_size = MAX_MESSAGE_BYTES
    ui.button.default_props("no-caps")
    app.on_startup(start)
    app.on_shutdown(runtime.stop)

    @ui.page("/", title="Flows · FlowLoom")
    async def flows_route() -> None:
        await until_started()
        with page_frame("Flows"):
            await flows.flows_page(runtime)

    @ui.page("/flows/{flow_id}", title="Editor · FlowLoom")
    async def editor_route(flow_id: str) -> None:
        await until_started()
        with page_frame("Flows", wide=True):
            await editor.editor_page(runtime, flow_id)

    @ui.page("/runs", title="Runs · FlowLoom")
    async def runs_route(flow: str | None = None, status: str | None = None) -> None:
        await until_started()
        with page_frame("Runs"):
            await runs.runs_page(runtime, flow_id=flow, status=status)

    @ui.page("/runs/{run_id}", title="Run · FlowLoom")
    async def run_route(run_id: str) -> None:
        await until_started()
        with page_frame("Runs", wide=True):
            await runs.run_page(runtime, run_id)

    @ui.page("/dashboard", title="Dashboard · FlowLoom")
    async def dashboard_route() -> None:
        await until_started()
        with page_frame("Dashboard"):
            await dashboard.dashboard_page(runtime)

    @ui.page("/settings", title="Settings · FlowLoom")
    async def settings_route() -> None:
        await until_started()
        with page_frame("Settings"):
            await settings_page.settings_page(runtime)

    return runtime


def can_open_window() -> str | None:
    """None when a desktop window can be opened here, else what is missing, in plain words."""
    if importlib.util.find_spec("webview") is None:
        return f"the desktop window needs pywebview: install it with `{NATIVE_HINT}`"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return (
            "there is no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set)"
        )
    return None


def run_studio(
    settings: Settings, host: str = "127.0.0.1", port: int = 8080, native: bool = False
) -> None:
    """Serve the studio on `host:port` (or in a desktop window with `native`) until stopped.

    Where no window can be opened, `native` says why and what to install, and the studio is
    served for a browser instead. The studio serves the same REST API as `flowloom serve`.
    """
    if native and (missing := can_open_window()) is not None:
        url = f"http://{host}:{port}"
        print(
            f"FlowLoom cannot open a desktop window: {missing}. Serving the studio for your "
            f"browser instead: open {url}",
            file=sys.stderr,
        )
        native = False
    build_studio(settings)
    url = f"http://{host}:{port}"
    app.on_startup(lambda: log.info("studio starting", url=url, native=native))
    if not loopback_host(host):
        log.warning(
            "the studio has no sign-in: anyone who can reach this address can change and run "
            "flows. Keep FLOWLOOM_HOST=127.0.0.1, or put the studio behind a proxy that signs "
            "people in (for webhooks alone, `flowloom serve` is safe on every address)",
            url=url,
        )
    ui.run(
        host=host,
        port=port,
        title="FlowLoom",
        favicon="🧶",
        native=native,
        reload=False,  # the reloader re-imports a script file; a console script has none
        show=False,
        show_welcome_message=False,
        tailwind=False,  # build_studio links the prebuilt stylesheet instead
        log_config=None,  # uvicorn's records go through FlowLoom's logging setup
    )
