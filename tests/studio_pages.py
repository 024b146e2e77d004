"""The studio served to NiceGUI's simulated user, with its runtime on a fresh data dir.

    async def test_something(studio: Studio) -> None:
        await studio.user.open("/")
        await studio.user.should_see("Flows")
        await studio.runtime.db.flows.create(...)

The `studio` fixture is defined here and imported by the page test modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nicegui import app
from nicegui.testing import User
from nicegui.testing.user_simulation import user_simulation

from engine.settings import get_settings
from studio.runtime import Runtime

MAIN_FILE = Path(__file__).with_name("studio_main.py")


@dataclass
class Studio:
    user: User
    runtime: Runtime

    async def create_flow(self, document: dict[str, Any]) -> str:
        flow = await self.runtime.db.flows.create(document)
        return flow.id

    async def sees(self, target: str) -> None:
        """`user.should_see`, patient enough for debounced validation and run events."""
        await self.user.should_see(target, retries=50)

    async def until(self, check: Any, timeout_s: float = 5.0) -> None:
        """Wait until `check()` is true (the UI draws run events on a timer)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {check}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def studio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Studio]:
    """The studio's pages on a runtime whose data lives in tmp_path; fails on ERROR logs."""
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FLOWLOOM_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        async with user_simulation(main_file=MAIN_FILE) as user:
            runtime: Runtime = app.state.runtime
            while runtime._db is None:  # NiceGUI starts it in the background
                await asyncio.sleep(0.01)
            yield Studio(user, runtime)
    finally:
        get_settings.cache_clear()
    errors = [r for r in caplog.get_records("call") if r.levelname == "ERROR"]
    if errors:
        pytest.fail(f"unexpected ERROR logs: {[r.getMessage() for r in errors]}", pytrace=False)
