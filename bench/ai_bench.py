"""AI step benchmark: the agent step's own overhead over a direct SDK call, and concurrency.

    .venv/bin/python bench/ai_bench.py [--calls 300] [--concurrent 100] [--latency 0.2]

Both sides talk to the same fake vendor (tests/fake_llm.py, the real OpenAI and Anthropic wire
formats over loopback HTTP), served from a child process so the server does not compete with
the measured code for the GIL. Direct SDK calls and agent steps (a manual trigger and one
`ai.agent`, run by the engine) alternate in blocks; each figure is the best block's mean.
Targets: agent overhead <= 1 ms per call; 100 concurrent steps against a model answering
after 200 ms finish in about one model latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anthropic  # noqa: E402
import openai  # noqa: E402

from engine import CompiledFlow, Engine, compile_flow  # noqa: E402

SERVE_FAKE = """
import sys, time
from tests.fake_llm import FakeLLM, text
fake = FakeLLM()
fake.always(text("The quick brown fox jumps over the lazy dog.", delay_s=float(sys.argv[1])))
fake.start()
print(fake.url, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
fake.stop()
"""


class FakeVendor:
    """tests/fake_llm.py in a child process, answering every request after `latency_s`."""

    def __init__(self, latency_s: float) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", SERVE_FAKE, str(latency_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url:
            raise RuntimeError("the fake vendor did not start")

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)


def agent_flow(config: dict[str, Any]) -> CompiledFlow:
    return compile_flow(
        {
            "schema": "flowloom/1",
            "name": "one agent",
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "ask", "type": "ai.agent", "config": config},
            ],
            "edges": [{"source": "start", "target": "ask"}],
        }
    )


async def mean_of_best_block(
    contenders: dict[str, Callable[[], Awaitable[Any]]], calls: int, blocks: int = 10
) -> dict[str, tuple[float, float]]:
    """Each contender's (wall, CPU) seconds per call, best block means of `blocks` alternating
    blocks. CPU time counts this process only (not the fake vendor's), so it shows the client
    side's own work even when other processes load the machine."""
    best = dict.fromkeys(contenders, (float("inf"), float("inf")))
    per_block = max(1, calls // blocks)
    for call in contenders.values():  # warm up connections, clients and caches
        for _ in range(5):
            await call()
    for _ in range(blocks):
        for name, call in contenders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(per_block):
                await call()
            wall = (time.perf_counter() - wall) / per_block
            cpu = (time.process_time() - cpu) / per_block
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


async def overhead(url: str, calls: int) -> None:
    engine = Engine()
    # typed loosely: the bench passes plain dicts, as the agent step does
    openai_client: Any = openai.AsyncOpenAI(api_key="sk-bench", base_url=f"{url}/v1", max_retries=0)
    anthropic_client: Any = anthropic.AsyncAnthropic(
        api_key="sk-bench", base_url=url, max_retries=0
    )
    messages = [{"role": "user", "content": "Say something."}]
    os.environ["OPENAI_API_KEY"] = os.environ["ANTHROPIC_API_KEY"] = "sk-bench"

    async def openai_direct(stream: bool) -> str:
        if not stream:
            completion = await openai_client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                max_completion_tokens=1024,
            )
            return completion.choices[0].message.content or ""
        parts = []
        response = await openai_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            max_completion_tokens=1024,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with response:
            async for chunk in response:
                for choice in chunk.choices:
                    parts.append(choice.delta.content or "")
        return "".join(parts)

    async def anthropic_direct(stream: bool) -> str:
        if not stream:
            message = await anthropic_client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=1024,
                messages=messages,
            )
            return "".join(b.text for b in message.content if b.type == "text")
        parts = []
        events = await anthropic_client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=1024,
            messages=messages,
            stream=True,
        )
        async with events:
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
        return "".join(parts)

    engine_only = compile_flow(
        {
            "schema": "flowloom/1",
            "name": "no agent",
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "ask", "type": "data.set", "config": {"values": {"text": "x"}}},
            ],
            "edges": [{"source": "start", "target": "ask"}],
        }
    )
    baseline = (await mean_of_best_block({"engine": lambda: engine.run(engine_only)}, 3000))[
        "engine"
    ][1]
    print(f"Engine alone (trigger + one data.set step): {baseline * 1e6:.0f} us CPU per run")
    print()
    print("Per call, against the fake vendor answering at once (best block means)")
    print(
        f"  {'':22} {'wall: SDK':>10} {'agent':>9}   {'CPU: SDK':>9} {'agent':>9} "
        f"{'overhead':>9} {'w/o engine':>10}"
    )
    for vendor, model, direct in (
        ("openai", "gpt-4o-mini", openai_direct),
        ("anthropic", "claude-haiku-4-5", anthropic_direct),
    ):
        base_url = f"{url}/v1" if vendor == "openai" else url
        for stream in (False, True):
            compiled = agent_flow(
                {
                    "provider": vendor,
                    "model": model,
                    "prompt": "Say something.",
                    "base_url": base_url,
                    "stream": stream,
                }
            )

            async def agent_step(flow: CompiledFlow = compiled) -> None:
                result = await engine.run(flow)
                assert result.status == "succeeded", result.error

            async def sdk_call(stream: bool = stream, direct: Any = direct) -> None:
                await direct(stream)

            best = await mean_of_best_block({"sdk": sdk_call, "agent": agent_step}, calls)
            (sdk_wall, sdk_cpu), (agent_wall, agent_cpu) = best["sdk"], best["agent"]
            extra = agent_cpu - sdk_cpu
            label = f"{vendor}, {'streamed' if stream else 'plain'}"
            print(
                f"  {label:22} {sdk_wall * 1e3:7.2f} ms {agent_wall * 1e3:6.2f} ms   "
                f"{sdk_cpu * 1e3:6.2f} ms {agent_cpu * 1e3:6.2f} ms {extra * 1e3:6.3f} ms "
                f"{(extra - baseline) * 1e3:7.3f} ms"
            )
    print("  overhead: the agent step's CPU time minus the direct call's; target <= 1 ms")
    await engine.aclose()
    await openai_client.close()
    await anthropic_client.close()


async def concurrency(url: str, steps: int, latency_s: float) -> None:
    engine = Engine()
    client: Any = openai.AsyncOpenAI(api_key="sk-bench", base_url=f"{url}/v1", max_retries=0)

    async def direct() -> None:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say something."}],
            max_completion_tokens=1024,
        )

    async def direct_streamed() -> None:
        response = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say something."}],
            max_completion_tokens=1024,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with response:
            async for _ in response:
                pass

    def agent(stream: bool) -> Callable[[], Awaitable[Any]]:
        compiled = agent_flow(
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "prompt": "Say something.",
                "base_url": f"{url}/v1",
                "stream": stream,
            }
        )
        return lambda: engine.run(compiled)

    print()
    print(f"{steps} at once, the model answering after {latency_s * 1e3:.0f} ms (best of 3)")
    for label, call in (
        ("direct SDK calls, plain", direct),
        ("agent steps, plain", agent(False)),
        ("direct SDK calls, streamed", direct_streamed),
        ("agent steps, streamed", agent(True)),
    ):
        await asyncio.gather(*(call() for _ in range(steps)))  # open the connections
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            await asyncio.gather(*(call() for _ in range(steps)))
            best = min(best, time.perf_counter() - started)
        print(f"  {label:28} {best * 1e3:6.0f} ms  ({best / latency_s:.2f} model latencies)")
    await engine.aclose()
    await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=400, help="calls per contender")
    parser.add_argument("--concurrent", type=int, default=100, help="concurrent agent steps")
    parser.add_argument("--latency", type=float, default=0.2, help="model latency, seconds")
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"openai {openai.__version__}, anthropic {anthropic.__version__}"
    )
    print()
    instant = FakeVendor(0.0)
    try:
        await overhead(instant.url, args.calls)
    finally:
        instant.close()
    slow = FakeVendor(args.latency)
    try:
        await concurrency(slow.url, args.concurrent, args.latency)
    finally:
        slow.close()


if __name__ == "__main__":
    asyncio.run(main())
