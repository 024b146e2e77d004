"""A real `flowloom serve` process on loopback, for API, recovery and trigger tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class FlowLoomProcess:
    """`python -m studio serve` with its own data dir; start, stop, or kill -9 it."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout_s: float = 30.0) -> FlowLoomProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOOM_")}
        env.pop("PYTEST_CURRENT_TEST", None)
        env.update(
            FLOWLOOM_DATA_DIR=str(self.data_dir),
            FLOWLOOM_PORT=str(self.port),
            FLOWLOOM_HOST="127.0.0.1",
            **self.extra_env,
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "studio", "serve"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flowloom serve exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"flowloom serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """Kill -9: no shutdown code runs, as when the machine loses power."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=15)

    def wait_for_run(self, run_id: str, until: Any, timeout_s: float = 20.0) -> dict[str, Any]:
        """Poll GET /runs/{id} until `until(run)` holds; returns the run."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while True:
                run: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
                if until(run):
                    return run
                if time.monotonic() > deadline:
                    raise AssertionError(f"run never reached the state wanted: {run}")
                time.sleep(0.05)
