"""`flowloom studio --native` where no window can open: it says why and serves the browser UI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.flowloom_process import REPO, free_port


def test_native_without_a_window_says_what_to_install_and_serves_the_browser_ui(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOOM_")}
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    env.update(FLOWLOOM_DATA_DIR=str(tmp_path / "data"), FLOWLOOM_PORT=str(port))
    log_path = tmp_path / "studio.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "studio", "studio", "--native"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"it stopped instead:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"it did not serve:\n{log_path.read_text()}"
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert page.status_code == 200
        said = log_path.read_text()
        assert "cannot open a desktop window" in said
        assert "flowloom[native]" in said or "DISPLAY" in said
        assert f"http://127.0.0.1:{port}" in said
    finally:
        process.terminate()
        process.wait(timeout=10)
