"""`flowloom flows …` and `flowloom runs …`: the stored flows and runs, from a shell.

    flowloom flows list [--json]
    flowloom flows import FLOW.json [--json]
    flowloom flows export FLOW_ID [-o FILE]
    flowloom runs list [--flow FLOW_ID] [--status STATUS] [--limit N] [--json]
    flowloom runs show RUN_ID [--json]
    flowloom runs cancel RUN_ID [--json]

They open the database of the settings (FLOWLOOM_DATA_DIR / FLOWLOOM_DATABASE_URL)
directly, so they work whether a server runs or not. `--json` prints what the REST API
would answer. Cancelling asks the server on FLOWLOOM_HOST:FLOWLOOM_PORT first, since only
the process running a run can stop it; when no server answers there, the FlowLoom process
that runs it (another one sharing the database) is asked through the database and stops it
within about FLOWLOOM_SYNC_S, and a run whose process is gone is marked `cancelled`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import engine
from engine.settings import Settings
from studio.cli import EXIT_OK, EXIT_RUN_FAILED, UsageError, _load, _open_database

if TYPE_CHECKING:
    from storage import Database

T = TypeVar("T")
EXIT_NOT_FOUND = 1
SERVER_TIMEOUT_S = 2.0


def add_commands(commands: Any) -> None:
    """Add the `flows` and `runs` subcommands to the `flowloom` parser's subparsers."""
    flows = commands.add_parser("flows", help="list, import and export stored flows")
    flow_actions = flows.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = flow_actions.add_parser("list", help="every stored flow, most recently saved first")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_flows_list)
    importing = flow_actions.add_parser("import", help="store a flow document as a new flow")
    importing.add_argument("file", type=Path, metavar="FLOW.json")
    importing.add_argument("--json", action="store_true", help="print the stored flow as JSON")
    importing.set_defaults(handler=_flows_import)
    exporting = flow_actions.add_parser("export", help="print (or write) a flow's document")
    exporting.add_argument("flow_id", metavar="FLOW_ID")
    exporting.add_argument("-o", "--output", type=Path, metavar="FILE", help="write it here")
    exporting.set_defaults(handler=_flows_export)

    runs = commands.add_parser("runs", help="list, show and cancel runs")
    run_actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_list = run_actions.add_parser("list", help="runs, newest first")
    run_list.add_argument("--flow", metavar="FLOW_ID", help="only this flow's runs")
    run_list.add_argument("--status", help="only runs with this status, e.g. failed")
    run_list.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    run_list.add_argument("--json", action="store_true", help="print JSON")
    run_list.set_defaults(handler=_runs_list)
    show = run_actions.add_parser("show", help="one run with every step")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_runs_show)
    cancel = run_actions.add_parser("cancel", help="stop a queued or running run")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--json", action="store_true", help="print JSON")
    cancel.set_defaults(handler=_runs_cancel)


# -- flows ------------------------------------------------------------------------------------


def _flows_list(args: argparse.Namespace, settings: Settings) -> int:
    from studio.api import flow_json

    flows, total = _with_database(settings, lambda db: db.flows.list(limit=10_000))
    if args.json:
        _print_json({"items": [flow_json(f, with_document=False) for f in flows], "total": total})
        return EXIT_OK
    if not flows:
        print("No flows yet: import one with `flowloom flows import FLOW.json`.")
        return EXIT_OK
    rows = [
        (f.id, f.name, f"v{f.version}", "active" if f.active else "-", _when(f.updated_at))
        for f in flows
    ]
    _print_table(("ID", "NAME", "VERSION", "ACTIVE", "SAVED"), rows)
    return EXIT_OK


def _flows_import(args: argparse.Namespace, settings: Settings) -> int:
    from storage import DuplicateName
    from studio.api import flow_json

    document = _load(args.file)
    try:
        problems = engine.validate(document)
    except engine.DocumentError as exc:
        raise UsageError(str(exc)) from exc
    errors = [p for p in problems if p.level == "error"]
    if errors:
        lines = "\n".join(f"  {p.message}" for p in errors)
        raise UsageError(f"{args.file} cannot be imported; fix these first:\n{lines}")
    try:
        flow = _with_database(
            settings, lambda db: db.flows.create(document, message=f"Imported from {args.file}")
        )
    except DuplicateName as exc:
        raise UsageError(f'{exc} (rename it in {args.file}: its "name")') from exc
    if args.json:
        _print_json(flow_json(flow, with_document=False))
    else:
        print(f"Imported '{flow.name}' as flow {flow.id} (version 1, inactive).")
    return EXIT_OK


def _flows_export(args: argparse.Namespace, settings: Settings) -> int:
    from storage import NotFound

    try:
        flow = _with_database(settings, lambda db: db.flows.get(args.flow_id))
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    text = json.dumps(flow.document, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"Wrote '{flow.name}' (version {flow.version}) to {args.output}.", file=sys.stderr)
    return EXIT_OK


# -- runs -------------------------------------------------------------------------------------


def _runs_list(args: argparse.Namespace, settings: Settings) -> int:
    from storage import RUN_STATUSES
    from studio.api import run_json

    if args.status is not None and args.status not in RUN_STATUSES:
        raise UsageError(f"--status takes one of {', '.join(RUN_STATUSES)}, not '{args.status}'.")
    if args.limit < 1:
        raise UsageError("--limit must be at least 1.")
    runs, total = _with_database(
        settings,
        lambda db: db.runs.list(flow_id=args.flow, status=args.status, limit=args.limit),
    )
    if args.json:
        _print_json({"items": [run_json(r, with_steps=False) for r in runs], "total": total})
        return EXIT_OK
    if not runs:
        print("No runs match.")
        return EXIT_OK
    rows = [
        (r.id, r.status, r.flow_id or "(deleted)", r.trigger or "-", _when(r.created_at))
        for r in runs
    ]
    _print_table(("RUN", "STATUS", "FLOW", "TRIGGER", "CREATED"), rows)
    if total > len(runs):
        print(f"({len(runs)} of {total}; --limit shows more)")
    return EXIT_OK


def _runs_show(args: argparse.Namespace, settings: Settings) -> int:
    from storage import NotFound
    from studio.api import run_json

    try:
        run = _with_database(settings, lambda db: db.runs.get(args.run_id))
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        _print_json(run_json(run))
        return EXIT_OK
    print(f"run      {run.id}")
    print(f"flow     {run.flow_id or '(deleted)'} (version {run.flow_version})")
    print(f"status   {run.status}")
    print(f"created  {_when(run.created_at)}")
    if run.finished_at is not None and run.started_at is not None:
        print(f"took     {(run.finished_at - run.started_at).total_seconds():.3f} s")
    if run.error:
        print(f"error    {run.error.get('message')}")
    print("steps:")
    for step in run.steps:
        took = (
            f"{(step.finished_at - step.started_at).total_seconds() * 1000:.0f} ms"
            if step.started_at and step.finished_at
            else ""
        )
        print(f"  {step.seq:>3}  {step.node_name} ({step.node_type})  {step.status}  {took}")
        if step.error:
            print(f"       {step.error}")
    print("output:")
    print(json.dumps(run.output, indent=2, ensure_ascii=False, default=str))
    return EXIT_OK


def _runs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from storage import NotFound
    from studio.runtime import cancel_stored

    answer = _cancel_on_server(settings, args.run_id)
    if answer is not None:
        how, status = "by the server", answer
    else:
        try:
            run = _with_database(settings, lambda db: db.runs.get(args.run_id))
        except NotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_NOT_FOUND
        by = f"cli-{os.getpid()}"
        beat = settings.heartbeat_s
        ended = _with_database(
            settings, lambda db: cancel_stored(db, run.id, by=by, heartbeat_s=beat)
        )
        if ended is None:
            message = f"Run {run.id} is not running (it is {run.status}); nothing to cancel."
            if args.json:
                _print_json({"run_id": run.id, "status": run.status, "cancelled": False})
            else:
                print(message, file=sys.stderr)
            return EXIT_RUN_FAILED
        how, status = "", ended
    if args.json:
        _print_json({"run_id": args.run_id, "status": status, "cancelled": True})
    elif status == "cancelled":
        print(f"Cancelled run {args.run_id}{' ' + how if how else ''}.")
    else:
        print(
            f"Asked the FlowLoom process running run {args.run_id} to cancel it; it is still "
            f"{status}. Check again with: flowloom runs show {args.run_id}"
        )
    return EXIT_OK


def _cancel_on_server(settings: Settings, run_id: str) -> str | None:
    """Ask the server on FLOWLOOM_HOST/PORT to cancel; the run's status if it did, else None
    (no server answers, or it does not run this run)."""
    import httpx

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://{host}:{settings.port}/api/v1/runs/{run_id}/cancel"
    token = settings.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        answer = httpx.post(url, headers=headers, timeout=SERVER_TIMEOUT_S)
    except httpx.HTTPError:
        return None
    if answer.status_code not in (200, 202):  # 202: it asked the process running the run
        return None
    status: str = answer.json().get("status", "cancelled")
    return status


# -- plumbing ---------------------------------------------------------------------------------


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the database, do `work`, close it (StorageError becomes a usage error)."""
    from storage import DuplicateName, NotFound, StorageError

    async def run() -> T:
        db = await _open_database(settings)
        try:
            return await work(db)
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except (NotFound, DuplicateName):
        raise
    except StorageError as exc:
        raise UsageError(str(exc)) from exc


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))
