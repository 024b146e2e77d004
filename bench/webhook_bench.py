"""Webhook benchmark: a real `flowloom serve` on 127.0.0.1, called by 10 keep-alive callers.

    .venv/bin/python bench/webhook_bench.py [--requests 20000] [--seconds 30] [--callers 10]
                                             [--mode async|sync|both] [--profile]
                                             [--no-calibration]

The server runs a `trigger.webhook → data.set` flow with every run stored (SQLite file in a
temporary data dir). Each mode sends up to `--requests` calls (and stops after `--seconds`)
over `--callers` HTTP/1.1 keep-alive connections; the load generator is a raw asyncio
client in this process, so its own cost stays small next to the server's. It prints:

- throughput (answers per second), latency p50 / p95 / p99 / max, and every non-2xx answer;
- that every answered call is stored: the runs in the database, counted after the load;
- the server's peak resident memory (VmRSS from /proc) while under load;
- cold start: from starting `flowloom serve` to its first webhook answer (a restart: the
  modules' bytecode is cached, as after any earlier start);
- how fast the machine is right now: a bare uvicorn app (the same HTTP stack, no FlowLoom)
  under the same callers, and FlowLoom's answers as a share of its rate. Shared machines drift
  by a quarter within an hour; compare that share, not raw rates taken at different times.

`--profile` runs the server under cProfile and prints its busiest functions afterwards.
Targets: ≥ 5,000 answers/s, p95 ≤ 5 ms, no errors, every answer stored, cold start ≤ 1.0 s,
RSS ≤ 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "nodes", "storage", "studio")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What a webhook answer costs with no FlowLoom behind it: read the body, answer 202."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"run_id": "-", "status": "queued"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def calibrate(callers: int, limit: int) -> float:
    """Answers per second of `bare_app` under uvicorn with the same load: the machine's speed."""
    port = free_port()
    command = [sys.executable, __file__, "--serve-bare", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the bare uvicorn app never started")
            time.sleep(0.02)
        run(generate(port, "/", callers, limit // 10, 5))  # warm-up
        started = time.perf_counter()
        load = run(generate(port, "/", callers, limit, 10))
        return len(load.latencies_ns) / (time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait()


def wait_for_first_answer(port: int, path: str, timeout_s: float = 60.0) -> None:
    """Call the webhook every 5 ms (a raw socket: cheap to retry) until it answers 2xx."""
    body = b'{"n": 0}'
    request = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(request)
                if connection.recv(16).startswith(b"HTTP/1.1 20"):
                    return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("flowloom serve never answered its webhook")


def flow_document(name: str, response: str) -> dict[str, Any]:
    return {
        "schema": "flowloom/1",
        "name": name,
        "nodes": [
            {
                "id": "hook",
                "type": "trigger.webhook",
                "name": "Incoming",
                "config": {"response": response, "timeout_s": 10},
            },
            {
                "id": "set",
                "type": "data.set",
                "name": "Mark",
                "config": {"values": {"seen": True, "n": "{{ input.body.n }}"}},
            },
        ],
        "edges": [{"source": "hook", "target": "set"}],
    }


class Server:
    """`python -m studio serve` in its own data dir, optionally under cProfile."""

    def __init__(self, data_dir: Path, *, profile: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOOM_")}
        env.update(
            FLOWLOOM_DATA_DIR=str(self.data_dir),
            FLOWLOOM_PORT=str(self.port),
            FLOWLOOM_HOST="127.0.0.1",
            FLOWLOOM_LOG_LEVEL="WARNING",
            # The bench measures the server, not the rate limit.
            FLOWLOOM_WEBHOOK_RATE_PER_S="1000000",
            FLOWLOOM_WEBHOOK_BURST="1000000",
        )
        command = [sys.executable, "-m", "studio", "serve"]
        if self.profile is not None:
            command = [sys.executable, "-m", "cProfile", "-o", str(self.profile), *command[1:]]
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.data_dir.parent / "server.log").open("ab"),
        )

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.01)
        raise RuntimeError("flowloom serve did not become ready")

    def rss_mb(self) -> float:
        assert self.process is not None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far (user + system, all its threads)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@dataclass
class Load:
    limit: int
    deadline: float
    sent: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def take(self) -> bool:
        if self.sent >= self.limit or time.perf_counter() > self.deadline:
            return False
        self.sent += 1
        return True


async def caller(port: int, path: str, load: Load) -> None:
    """One keep-alive connection sending calls one after the other until the load is done."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    try:
        while load.take():
            body = b'{"n": %d, "text": "hello from the webhook bench"}' % load.sent
            request = f"{head}content-length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter_ns()
            writer.write(request)
            answer_head = await reader.readuntil(b"\r\n\r\n")
            status = int(answer_head[9:12])
            length = 0
            for line in answer_head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            answer = await reader.readexactly(length)
            load.latencies_ns.append(time.perf_counter_ns() - started)
            load.statuses[status] = load.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                load.run_ids.append(answer.decode())
            elif len(load.errors) < 5:
                load.errors.append(f"{status}: {answer[:200]!r}")
    except (OSError, asyncio.IncompleteReadError) as exc:
        load.errors.append(f"connection failed: {exc!r}")
    finally:
        writer.close()


async def generate(port: int, path: str, callers: int, limit: int, seconds: float) -> Load:
    load = Load(limit, time.perf_counter() + seconds)
    await asyncio.gather(*(caller(port, path, load) for _ in range(callers)))
    return load


def run(work: Any) -> Load:
    """Run the load generator on uvloop when it is installed (cheaper per call)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    result: Load = uvloop.run(work)
    return result


def run_load(
    server: Server, path: str, callers: int, limit: int, seconds: float
) -> tuple[Load, float, float, float]:
    """The load, its wall time, the server's peak RSS (MB) and CPU seconds meanwhile."""
    peak = [server.rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], server.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu_before = server.cpu_s()
    started = time.perf_counter()
    load = run(generate(server.port, path, callers, limit, seconds))
    elapsed = time.perf_counter() - started
    cpu = server.cpu_s() - cpu_before
    done.set()
    sampler.join()
    return load, elapsed, max(peak[0], server.rss_mb()), cpu


def stored_runs(database: Path, flow_id: str) -> tuple[int, dict[str, int]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT status, count(*) FROM runs WHERE flow_id = ? GROUP BY status", (flow_id,)
        ).fetchall()
    by_status = dict(rows)
    return sum(by_status.values()), by_status


def wait_settled(database: Path, flow_id: str, timeout_s: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        _, by_status = stored_runs(database, flow_id)
        if not (set(by_status) & {"queued", "running"}) or time.monotonic() > deadline:
            return by_status
        time.sleep(0.2)


def report(mode: str, load: Load, elapsed: float, rss_mb: float, cpu_s: float, stored: int) -> bool:
    latencies = sorted(load.latencies_ns)
    answered = len(latencies)
    ok = sum(count for status, count in load.statuses.items() if 200 <= status < 300)
    errors = answered - ok + sum(1 for e in load.errors if e.startswith("connection"))
    ms = [x / 1e6 for x in latencies] or [0.0]
    quantiles = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    rate = answered / elapsed if elapsed else 0.0
    ids = set()
    for text in load.run_ids:
        with contextlib.suppress(ValueError):
            ids.add(json.loads(text).get("run_id") or "")
    print(f"\n== {mode} mode ==")
    print(f"answers          {answered:,} in {elapsed:.2f} s -> {rate:,.0f} /s")
    print(
        f"latency (ms)     p50 {quantiles[49]:.2f}  p95 {quantiles[94]:.2f}  "
        f"p99 {quantiles[98]:.2f}  max {max(ms):.2f}"
    )
    print(f"statuses         {dict(sorted(load.statuses.items()))}")
    print(f"errors           {errors}" + (f"  e.g. {load.errors[:3]}" if load.errors else ""))
    print(f"runs stored      {stored:,} for {ok:,} accepted calls")
    print(f"server RSS peak  {rss_mb:.0f} MB")
    if answered:
        print(
            f"server CPU       {cpu_s / answered * 1e6:.0f} µs per answer "
            f"({cpu_s / elapsed * 100:.0f} % of a core; recording the run included)"
        )
    with contextlib.suppress(OSError):
        print(
            f"machine load     {os.getloadavg()[0]:.1f} (1-minute average, {os.cpu_count()} cores)"
        )
    good = rate >= 5000 and quantiles[94] <= 5.0 and errors == 0 and stored >= ok
    good = good and rss_mb <= 200
    return good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--callers", type=int, default=10)
    parser.add_argument("--mode", choices=("async", "sync", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="profile the server (cProfile)")
    parser.add_argument(
        "--no-calibration", action="store_true", help="skip measuring a bare uvicorn app"
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:  # the calibration's server (see `calibrate`)
        import uvicorn

        uvicorn.run(bare_app, host="127.0.0.1", port=args.serve_bare, log_config=None)
        return 0
    modes = ("async", "sync") if args.mode == "both" else (args.mode,)

    with tempfile.TemporaryDirectory(prefix="flowloom-bench-") as temporary:
        data_dir = Path(temporary) / "data"
        database = data_dir / "flowloom.db"
        # Set up: the flows, activated; then stop, so the cold start below is a real one.
        server = Server(data_dir)
        server.start()
        server.wait_ready()
        paths: dict[str, tuple[str, str]] = {}
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as api:
            for mode in modes:
                created = api.post(
                    "/flows", json={"document": flow_document(f"bench {mode}", mode)}
                ).json()
                activation = api.post(f"/flows/{created['id']}/activate").json()
                url = activation["webhooks"][0]["url"]
                paths[mode] = (created["id"], url[len(server.url) :])
        server.stop()
        # A server started before finds its modules' bytecode cached; where the environment
        # says not to write it (PYTHONDONTWRITEBYTECODE), write it as that first start would.
        subprocess.run([sys.executable, "-m", "compileall", "-q", *PACKAGES], cwd=REPO, check=True)

        profile = Path(temporary) / "server.prof" if args.profile else None
        server = Server(data_dir, profile=profile)
        server.start()
        wait_for_first_answer(server.port, paths[modes[0]][1])
        cold_start = time.perf_counter() - server.started_at
        print(
            f"cold start       {cold_start:.3f} s from `flowloom serve` to its first webhook answer"
        )

        good = cold_start <= 1.0
        rates: dict[str, float] = {}
        try:
            for mode in modes:
                flow_id, path = paths[mode]
                # a short warm-up, so the figures are of a running server
                run_load(server, path, args.callers, 500, 5)
                before, _ = stored_runs(database, flow_id)
                load, elapsed, rss, cpu = run_load(
                    server, path, args.callers, args.requests, args.seconds
                )
                by_status = wait_settled(database, flow_id)
                stored = sum(by_status.values()) - before
                good = report(mode, load, elapsed, rss, cpu, stored) and good
                rates[mode] = len(load.latencies_ns) / elapsed if elapsed else 0.0
                print(f"run statuses     {by_status} (warm-up included)")
        finally:
            server.stop()
        if profile is not None and profile.exists():
            import pstats

            print("\n== server profile (cumulative, top 40) ==")
            pstats.Stats(str(profile)).sort_stats("tottime").print_stats(40)
    if not args.no_calibration:
        bare = calibrate(args.callers, min(args.requests, 20_000))
        shares = ", ".join(f"{mode} {rate / bare:.0%}" for mode, rate in rates.items())
        print(
            f"\nmachine speed    a bare uvicorn app (no FlowLoom) answers {bare:,.0f} /s here now, "
            f"same callers; FlowLoom's answers were {shares} of that"
        )
    print("\nall targets met" if good else "\nsome targets missed (see above)")
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
