"""The `flowloom` command line.

    flowloom studio [--host HOST] [--port PORT] [--native]
    flowloom validate FLOW.json [--json]
    flowloom run FLOW.json [--input JSON | --input @input.json] [--events]
    flowloom db upgrade | prune [--days N] [--max-runs N]
    flowloom credentials rotate-key [--new-key KEY]
    flowloom flows list | import FLOW.json | export FLOW_ID [-o FILE]   (each with --json)
    flowloom runs list [--flow ID] [--status S] | show RUN_ID | cancel RUN_ID

Exit codes: 0 success; 1 the run did not succeed; 2 the command could not start (bad
arguments, an unreadable or invalid flow document).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

import engine
from engine.logs import configure_logging
from engine.settings import Settings, get_settings
from studio import __version__

if TYPE_CHECKING:
    from storage import Database

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command cannot start; the message tells the user what to change."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `flowloom` subcommand."""
    parser = argparse.ArgumentParser(
        prog="flowloom",
        description="Design and run AI-agent workflows.",
    )
    parser.add_argument("--version", action="version", version=f"flowloom {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    studio = commands.add_parser("studio", help="serve the studio in a browser or a window")
    studio.add_argument("--host", help="address to listen on (default: FLOWLOOM_HOST, 127.0.0.1)")
    studio.add_argument("--port", type=int, help="port to listen on (default: FLOWLOOM_PORT, 8080)")
    studio.add_argument(
        "--native", action="store_true", help="open a desktop window instead of a browser tab"
    )
    studio.set_defaults(handler=_studio)

    serve = commands.add_parser("serve", help="serve the REST API and triggers, without the UI")
    serve.add_argument("--host", help="address to listen on (default: FLOWLOOM_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: FLOWLOOM_PORT, 8080)")
    serve.set_defaults(handler=_serve)

    validate = commands.add_parser("validate", help="check a flow document and list its problems")
    validate.add_argument("flow", type=Path, metavar="FLOW.json")
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")
    validate.set_defaults(handler=_validate)

    run = commands.add_parser("run", help="run a flow document headless and print its output")
    run.add_argument("flow", type=Path, metavar="FLOW.json")
    run.add_argument(
        "--input",
        metavar="JSON",
        help="the run's input: a JSON value, or @FILE to read it from a file",
    )
    run.add_argument(
        "--events", action="store_true", help="print every run event as a JSON line as it happens"
    )
    run.set_defaults(handler=_run)

    database = commands.add_parser("db", help="migrate the database, prune old runs")
    database_actions = database.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = database_actions.add_parser(
        "upgrade", help="migrate the database to this version's schema (the studio does it too)"
    )
    upgrade.set_defaults(handler=_db_upgrade)
    prune = database_actions.add_parser("prune", help="delete old runs, then compact the database")
    prune.add_argument(
        "--days", type=int, help="keep runs this many days (default: FLOWLOOM_RETENTION_DAYS, 30)"
    )
    prune.add_argument(
        "--max-runs",
        type=int,
        help="keep at most this many runs per flow (default: FLOWLOOM_RETENTION_MAX_RUNS, 1000)",
    )
    prune.set_defaults(handler=_db_prune)

    credentials = commands.add_parser("credentials", help="manage the stored credentials")
    credential_actions = credentials.add_subparsers(dest="action", metavar="ACTION", required=True)
    rotate = credential_actions.add_parser(
        "rotate-key", help="re-encrypt every credential with a new secret key"
    )
    rotate.add_argument(
        "--new-key",
        metavar="KEY",
        help="the new key: a Fernet key or any passphrase (default: a generated key, kept in "
        "the data dir; required when FLOWLOOM_SECRET_KEY is set)",
    )
    rotate.set_defaults(handler=_credentials_rotate_key)

    from studio.cli_records import add_commands  # imported here: it imports this module

    add_commands(commands)
    return parser


#: Options whose value may itself start with "-" (one Fernet key in 64 does).
_VALUE_OPTIONS = ("--new-key",)


def _values_attached(argv: Sequence[str]) -> list[str]:
    """`--new-key VALUE` as `--new-key=VALUE`: argparse takes a VALUE starting with "-" for
    an option and fails with "expected one argument"."""
    attached: list[str] = []
    words = iter(argv)
    for word in words:
        if word in _VALUE_OPTIONS:
            value = next(words, None)
            attached.append(word if value is None else f"{word}={value}")
        else:
            attached.append(word)
    return attached


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `flowloom` command line; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(_values_attached(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"error: {_settings_problems(exc)}", file=sys.stderr)
        return EXIT_USAGE
    serving = args.command in ("serve", "studio")
    configure_logging(
        settings, log_file=settings.data_dir / "logs" / "flowloom.log" if serving else None
    )

    try:
        code: int = args.handler(args, settings)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


def _settings_problems(exc: ValidationError) -> str:
    """What is wrong with the FLOWLOOM_* environment, a line per variable, in plain words."""
    lines = ["FlowLoom's settings cannot be read:"]
    for error in exc.errors():
        name = "FLOWLOOM_" + "_".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"])
        secret = any(word in name for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "URL"))
        given = "" if secret else f" (it is {error['input']!r})"  # secrets are never echoed
        lines.append(f"  {name}: {message[:1].lower()}{message[1:]}{given}.")
    return "\n".join(lines)


def _studio(args: argparse.Namespace, settings: Settings) -> int:
    # Where no window can be opened (no pywebview, no display), run_studio says what to
    # install and serves the browser UI instead of refusing.
    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    _check_free(host, port)
    from studio.app import run_studio  # NiceGUI is slow to import; only this command needs it

    run_studio(settings, host=host, port=port, native=args.native)
    return EXIT_OK


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from studio.headless import serve  # the server stack is only needed by this command

    overrides = {"host": args.host, "port": args.port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    _check_free(settings.host, settings.port)
    serve(settings)
    return EXIT_OK


def _check_free(host: str, port: int) -> None:
    """UsageError, before anything starts, when `host:port` cannot be listened on (taken)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        raise UsageError(
            f"FlowLoom cannot listen on {host}:{port}: {exc.strerror or exc}. Another program "
            "(or another FlowLoom) may be using that port: stop it, or choose another port "
            "with --port or FLOWLOOM_PORT."
        ) from None


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    document = _load(args.flow)
    try:
        problems = _errors_first(engine.validate(document))
    except engine.DocumentError as exc:
        raise UsageError(str(exc)) from exc
    has_errors = any(problem.level == "error" for problem in problems)

    if args.json:
        print(json.dumps([problem.to_dict() for problem in problems], indent=2, default=str))
    elif has_errors:
        _print_problems(problems, sys.stdout)
    else:
        print(f"OK: {document.get('name') or 'Untitled flow'} is valid")
        _print_problems(problems, sys.stdout)
    return EXIT_USAGE if has_errors else EXIT_OK


def _run(args: argparse.Namespace, settings: Settings) -> int:
    document = _load(args.flow)
    flow_input = _parse_input(args.input)
    on_event = _print_event if args.events else None

    try:
        result = asyncio.run(engine.run_flow(document, flow_input, on_event=on_event))
    except engine.InvalidFlowError as exc:
        print(f"error: {args.flow} cannot run:", file=sys.stderr)
        _print_problems(_errors_first(exc.problems), sys.stderr, indent="  ")
        return EXIT_USAGE
    except engine.DocumentError as exc:
        raise UsageError(str(exc)) from exc

    if args.events:
        print(json.dumps(result.output, default=str), flush=True)
    else:
        print(json.dumps(result.output, default=str, indent=2))
    if result.status == "succeeded":
        return EXIT_OK
    message = (result.error or {}).get("message") or "no reason given"
    print(f"error: the run {result.status}: {message}", file=sys.stderr)
    return EXIT_RUN_FAILED


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage import StorageError, migrations  # the database stack, for these commands only

    try:
        result = asyncio.run(migrations.upgrade(settings.effective_database_url))
    except StorageError as exc:
        raise UsageError(str(exc)) from exc
    if not result.migrated:
        print(f"The database is up to date (revision {result.after}).")
        return EXIT_OK
    print(f"Migrated the database from {result.before or 'an empty one'} to {result.after}.")
    if result.backup is not None:
        print(f"The file as it was before is kept at {result.backup}.")
    return EXIT_OK


def _db_prune(args: argparse.Namespace, settings: Settings) -> int:
    from storage import StorageError

    days = args.days if args.days is not None else settings.retention_days
    max_runs = args.max_runs if args.max_runs is not None else settings.retention_max_runs
    if days < 1 or max_runs < 1:
        raise UsageError("--days and --max-runs must be at least 1.")

    async def prune() -> dict[str, int]:
        db = await _open_database(settings)
        try:
            return await db.prune(days=days, max_runs_per_flow=max_runs)
        finally:
            await db.close()

    try:
        report = asyncio.run(prune())
    except StorageError as exc:
        raise UsageError(str(exc)) from exc
    print(
        f"Deleted {report['runs_deleted']} runs and {report['steps_deleted']} steps "
        f"(kept: {days} days, at most {max_runs} runs per flow). The database went from "
        f"{_size(report['bytes_before'])} to {_size(report['bytes_after'])}."
    )
    return EXIT_OK


def _credentials_rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    from storage import StorageError
    from storage.encryption import KEY_FILE_NAME, new_secret_key

    key_from_environment = settings.secret_key is not None
    if args.new_key is None and key_from_environment:
        # A generated key would have to be printed for you to set it; secrets are not printed.
        raise UsageError(
            "FLOWLOOM_SECRET_KEY is set, so choose the new key yourself: run "
            "`flowloom credentials rotate-key --new-key KEY`, then set FLOWLOOM_SECRET_KEY to it."
        )
    new_key = args.new_key if args.new_key is not None else new_secret_key()

    async def rotate() -> int:
        db = await _open_database(settings)
        try:
            return await db.credentials.rotate_key(new_key)
        finally:
            await db.close()

    try:
        count = asyncio.run(rotate())
    except StorageError as exc:
        raise UsageError(str(exc)) from exc
    print(f"Re-encrypted {count} credential{'' if count == 1 else 's'} with the new key.")
    if key_from_environment:
        print("Set FLOWLOOM_SECRET_KEY to the new key now: the old key no longer decrypts them.")
    else:
        print(f"The new key is kept in {settings.data_dir / KEY_FILE_NAME}.")
    return EXIT_OK


async def _open_database(settings: Settings) -> Database:
    from storage import Database

    return await Database.open(
        settings.effective_database_url,
        data_dir=settings.data_dir,
        secret_key=settings.secret_key.get_secret_value() if settings.secret_key else None,
        max_payload_bytes=settings.max_payload_bytes,
    )


def _size(size_bytes: int) -> str:
    return (
        f"{size_bytes / 1024 / 1024:.1f} MiB"
        if size_bytes >= 1024 * 1024
        else f"{size_bytes / 1024:.0f} KiB"
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        return engine.load_document(path)
    except engine.DocumentError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _parse_input(option: str | None) -> Any:
    """The run input from `--input`: JSON text, or `@FILE` naming a JSON file."""
    if option is None:
        return None
    text, source = option, "--input"
    if option.startswith("@"):
        path = Path(option[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--input: cannot read {path}: {exc.strerror or exc}") from exc
        source = f"--input file {path}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            """Pass a JSON value such as '{"name": "Ada"}', or @FILE to read one from a file."""
        ) from exc


def _print_event(event: engine.Event) -> None:
    print(json.dumps(engine.event_to_dict(event), default=str), flush=True)


def _errors_first(problems: Sequence[engine.Problem]) -> list[engine.Problem]:
    return sorted(problems, key=lambda problem: problem.level != "error")


def _print_problems(problems: Sequence[engine.Problem], stream: TextIO, indent: str = "") -> None:
    for problem in problems:
        print(f"{indent}{problem.level}: {problem.message}", file=stream)
