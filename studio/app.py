"""The studio web app: NiceGUI pages served by one uvicorn process.

`run_studio(host, port)` serves every page and blocks until the server stops.
"""

from __future__ import annotations

import structlog
from nicegui import app, ui

from engine.settings import Settings
from studio import __version__
from studio.runtime import Runtime
from studio.server import mount

log = structlog.get_logger(__name__)


@ui.page("/", title="FlowLoom")
def index_page() -> None:
    """The start page: says FlowLoom is running and which version."""
    with ui.card().classes("absolute-center w-96 items-center gap-2 p-8"):
        ui.icon("account_tree", size="3rem", color="primary")
        ui.label("FlowLoom").classes("text-3xl font-bold")
        ui.label("Design and run AI-agent workflows on a canvas.").classes(
            "text-center text-gray-600"
        )
        ui.label("FlowLoom is running.").classes("text-positive")
        ui.label(f"version {__version__}").classes("text-xs text-gray-400")


def run_studio(
    settings: Settings, host: str = "127.0.0.1", port: int = 8080, native: bool = False
) -> None:
    """Serve the studio on `host:port` (or in a desktop window with `native`) until stopped.

    The studio serves the same REST API as `flowloom serve`, from the same runtime.
    """
    url = f"http://{host}:{port}"
    runtime = Runtime(settings)
    mount(app, runtime)
    app.on_startup(runtime.start)
    app.on_shutdown(runtime.stop)
    app.on_startup(lambda: log.info("studio starting", url=url, native=native))
    ui.run(
        host=host,
        port=port,
        title="FlowLoom",
        native=native,
        reload=False,  # the reloader re-imports a script file; a console script has none
        show=False,
        show_welcome_message=False,
        log_config=None,  # uvicorn's records go through FlowLoom's logging setup
    )
