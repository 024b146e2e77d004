"""Driving the canvas in a real browser: the test app in a subprocess, Debian's Chromium.

`CanvasServer` runs `python -m tests.canvas_app` on a free loopback port and talks to it over
HTTP; `launch_chromium` starts Debian's Chromium through Playwright (used only as a driver:
FlowLoom never downloads a browser).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.flowloom_process import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("FLOWLOOM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXAMPLES = REPO / "assets" / "examples"

Event = dict[str, Any]


class CanvasServer:
    """The canvas test app (tests/canvas_app.py) in its own process."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout_s: float = 30.0) -> CanvasServer:
        env = dict(os.environ)
        env.pop("PYTEST_CURRENT_TEST", None)  # NiceGUI would think it runs under its test plugin
        env["PYTHONPATH"] = str(REPO)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.canvas_app", str(self.port)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the canvas test app exited early:\n{self.log()}")
            try:
                if self.http.get("/test/events").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the canvas test app did not start in {timeout_s} s:\n{self.log()}")

    def stop(self) -> None:
        self.http.close()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- the app's test routes ---------------------------------------------------------------

    def put_document(self, key: str, document: dict[str, Any]) -> None:
        self.http.put(f"/test/documents/{key}", json=document).raise_for_status()

    def put_statuses(self, key: str, statuses: dict[str, list[Any]]) -> None:
        """Run statuses the page sets while building the canvas `key` (`{node_id: args}`)."""
        self.http.put(f"/test/statuses/{key}", json=statuses).raise_for_status()

    def page_url(self, *keys: str, readonly: bool = False) -> str:
        url = f"{self.url}/test/canvas?keys={','.join(keys)}"
        return url + "&readonly=true" if readonly else url

    def events(self, event: str | None = None, canvas: str | None = None) -> list[Event]:
        found: list[Event] = self.http.get("/test/events").json()
        return [
            e
            for e in found
            if (event is None or e["event"] == event) and (canvas is None or e["canvas"] == canvas)
        ]

    def clear_events(self) -> None:
        self.http.delete("/test/events").raise_for_status()

    def call(self, key: str, method: str, *args: Any) -> None:
        self.http.post(f"/test/call/{key}/{method}", json=list(args)).raise_for_status()

    def wait_for(
        self,
        event: str,
        check: Callable[[Any], bool] = lambda _: True,
        canvas: str | None = None,
        timeout_s: float = 5.0,
    ) -> Any:
        """The value of the first `event` (from `canvas`) whose value passes `check`."""
        deadline = time.monotonic() + timeout_s
        seen: list[Event] = []
        while time.monotonic() < deadline:
            seen = self.events(event, canvas)
            for found in seen:
                if check(found["value"]):
                    return found["value"]
            time.sleep(0.05)
        raise AssertionError(f"no matching {event!r} event in {timeout_s} s; got {seen!r}")


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, with no calls home."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium package."
        )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
