"""Runs and their steps: what the engine's recorder writes and the run pages read.

The recorder hands over plain data in batches (`record`): partial run updates and whole step
rows, written as a few bulk `INSERT … ON CONFLICT` statements, never a round trip per row
(see storage/bulk.py). Concurrent `create` calls share a commit too. Each `record` call is
one transaction: the recorder keeps them short (a few runs each, the event loop turning
between them), so a run being created (a webhook waiting for its 202) never waits long.
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from storage.bulk import BulkWrite, GroupCommit, execute_rows_sqlite
from storage.engines import DatabaseEngines
from storage.jsontext import JSONText
from storage.models import CancelRequest, IdempotencyKey, Run, Step, utc_now
from storage.records import (
    RUN_STATUSES,
    UNFINISHED,
    NotFound,
    RunRecord,
    StepRow,
    StorageError,
)
from storage.retention import capped_json
from storage.upsert import upsert

RUNS = cast(Table, Run.__table__)
STEPS = cast(Table, Step.__table__)
KEYS = cast(Table, IdempotencyKey.__table__)

#: What a run update passed to `record` may change.
RUN_UPDATE_FIELDS = frozenset({"status", "output", "error", "started_at", "finished_at", "owner"})
_RUN_UPDATE_KEYS = RUN_UPDATE_FIELDS | {"id"}
_TIMES = ("started_at", "finished_at")
#: Every column of a step row but its key, with the value used when a step dict lacks it.
STEP_DEFAULTS: dict[str, Any] = {
    "node_id": "",
    "node_name": "",
    "node_type": "",
    "status": "running",
    "visit": 1,
    "parent": None,
    "item_index": None,
    "input": None,
    "output": None,
    "port": None,
    "error": None,
    "attempts": 0,
    "started_at": None,
    "finished_at": None,
    "input_tokens": 0,
    "output_tokens": 0,
    "cost_usd": 0.0,
    "model": None,
    "logs": [],
    "exchanges": [],
}
STEP_COLUMNS = ("run_id", "seq", *STEP_DEFAULTS)
CREATE_COLUMNS = (
    "id",
    "flow_id",
    "flow_version",
    "trigger",
    "status",
    "input",
    "created_at",
    "owner",
)
_EMPTY_LIST = JSONText("[]")
# A run the recorder reports on before `create` stored it (or that `create` never saw, such
# as a run started by hand in a test) gets a header anyway, so its steps are never lost.
_PLACEHOLDER_STATUS = "running"


class RunRepository:
    """`db.runs`: run headers and their step rows."""

    def __init__(self, engines: DatabaseEngines, *, max_payload_bytes: int) -> None:
        self._engines = engines
        self._max_payload_bytes = max_payload_bytes
        dialect = engines.writer.dialect
        self._insert_runs = BulkWrite(insert(Run), CREATE_COLUMNS, dialect)
        self._creates = GroupCommit(self._write_created)
        self._run_updates: dict[tuple[str, ...], BulkWrite] = {}
        self._upsert_steps = BulkWrite(
            upsert(engines.dialect, Step, keys=("run_id", "seq"), update=STEP_DEFAULTS),
            STEP_COLUMNS,
            dialect,
        )
        self._insert_placeholders = BulkWrite(
            upsert(engines.dialect, Run, keys=("id",), update=()),
            ("id", "status", "created_at"),
            dialect,
        )

    async def create(
        self,
        *,
        run_id: str,
        flow_id: str | None,
        flow_version: int | None,
        trigger: str | None,
        input: Any,
        status: str = "queued",
    ) -> RunRecord:
        """Store a new run; it is committed when this returns (a webhook may answer 202).

        NotFound if `flow_id` names no flow; StorageError if the run id is taken.
        """
        record = RunRecord(
            id=run_id,
            flow_id=flow_id,
            flow_version=flow_version,
            trigger=trigger,
            status=status,
            input=input,
            output=None,
            error=None,
            created_at=utc_now(),
            started_at=None,
            finished_at=None,
        )
        await self.store(record)
        return record

    async def store(self, record: RunRecord) -> None:
        """Store a new run made elsewhere (see `create`), committed when this returns."""
        _check_status(record.status)
        try:
            await self._creates.submit(new_run_row(record))
        except IntegrityError as exc:
            if await self._exists(record.id):
                raise StorageError(f"A run with id {record.id} exists already.") from exc
            raise NotFound(f"There is no flow with id {record.flow_id}.") from exc

    async def create_once(
        self,
        *,
        key: str,
        expires_at: datetime,
        run_id: str,
        flow_id: str,
        node_id: str,
        flow_version: int | None,
        input: Any,
        owner: str | None = None,
    ) -> tuple[str, bool]:
        """Store a new run started by trigger `node_id` unless an unexpired `key` of that
        trigger started one already: (that run's id, False), else (`run_id`, True).

        The run and its key commit together, so even two processes that get the same
        delivery at once store one run. NotFound if `flow_id` names no flow.
        """
        for attempt in range(2):
            now = utc_now()
            same_key = (
                (KEYS.c.flow_id == flow_id) & (KEYS.c.node_id == node_id) & (KEYS.c.key == key)
            )
            try:
                async with self._engines.writer.begin() as connection:
                    earlier = await connection.scalar(
                        select(KEYS.c.run_id).where(same_key, KEYS.c.expires_at > now)
                    )
                    if earlier is not None:
                        return earlier, False
                    # An expired key of the same name gives way (an unexpired one that
                    # another transaction committed meanwhile must stay: it won).
                    await connection.execute(delete(KEYS).where(same_key, KEYS.c.expires_at <= now))
                    await connection.execute(
                        insert(RUNS).values(
                            id=run_id,
                            flow_id=flow_id,
                            flow_version=flow_version,
                            trigger=node_id,
                            status="queued",
                            input=input,
                            created_at=now,
                            owner=owner,
                        )
                    )
                    await connection.execute(
                        insert(KEYS).values(
                            flow_id=flow_id,
                            node_id=node_id,
                            key=key,
                            run_id=run_id,
                            created_at=now,
                            expires_at=expires_at,
                        )
                    )
                return run_id, True
            except IntegrityError as exc:
                # Another process stored the same key first (PostgreSQL): read theirs.
                if attempt or await self._exists(run_id):
                    raise StorageError(f"A run with id {run_id} exists already.") from exc
                async with self._engines.reader.connect() as connection:
                    if await connection.scalar(select(KEYS.c.run_id).where(same_key)) is None:
                        raise NotFound(f"There is no flow with id {flow_id}.") from exc
        raise AssertionError("unreachable")

    async def record(
        self, runs: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]]
    ) -> None:
        """Apply run updates and step upserts (the recorder's group commit) in one transaction.

        A run update is `{"id", …}` with any of RUN_UPDATE_FIELDS (times as epoch seconds);
        only the fields present change. A step is upserted whole by (run_id, seq); its input
        and output are capped at `max_payload_bytes`. A run not stored yet is created.
        """
        run_batches = self._run_batches(runs)
        step_rows = self._step_rows(steps)
        updated = {run["id"] for run in runs}
        now = time.time()
        placeholders = [
            {"id": run_id, "status": _PLACEHOLDER_STATUS, "created_at": now}
            for run_id in dict.fromkeys(row["run_id"] for row in step_rows)
            if run_id not in updated
        ]
        if not run_batches and not step_rows:
            return
        writes = [*run_batches]
        if placeholders:
            writes.append((self._insert_placeholders, placeholders))
        if step_rows:
            writes.append((self._upsert_steps, step_rows))
        if self._engines.dialect == "sqlite":
            # Encoded here; written in one go (see write_sqlite).
            encoded = [(write, write.parameters(rows)) for write, rows in writes]
            size = sum(write.json_size(parameters) for write, parameters in encoded)
            statements = [(write.sql, parameters) for write, parameters in encoded]
            await self._engines.write_sqlite(partial(_execute_many, statements), size=size)
            return
        async with self._engines.writer.begin() as connection:
            for statement, rows in writes:
                await statement.execute(connection, rows)

    async def get(self, run_id: str) -> RunRecord:
        """The run with its steps in order; NotFound if there is none."""
        async with self._engines.reader.connect() as connection:
            row = (await connection.execute(select(RUNS).where(RUNS.c.id == run_id))).first()
            if row is None:
                raise NotFound(f"There is no run with id {run_id}.")
            steps = await connection.execute(
                select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.seq)
            )
            return _run_record(row._mapping, [_step_row(step._mapping) for step in steps])

    async def list(
        self,
        *,
        flow_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[builtins.list[RunRecord], int]:
        """A page of runs, newest first (without their steps), and how many match in all."""
        conditions: builtins.list[ColumnElement[bool]] = []
        if flow_id is not None:
            conditions.append(RUNS.c.flow_id == flow_id)
        if status is not None:
            conditions.append(RUNS.c.status == status)
        async with self._engines.reader.connect() as connection:
            rows = await connection.execute(
                select(RUNS)
                .where(*conditions)
                .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
            records = [_run_record(row._mapping, []) for row in rows]
            total = await connection.scalar(
                select(func.count()).select_from(RUNS).where(*conditions)
            )
        return records, int(total or 0)

    async def unfinished(self) -> builtins.list[RunRecord]:
        """Runs still queued or running (as a crash left them), oldest first, with steps."""
        async with self._engines.reader.connect() as connection:
            rows = (
                await connection.execute(
                    select(RUNS)
                    .where(RUNS.c.status.in_(UNFINISHED))
                    .order_by(RUNS.c.created_at, RUNS.c.id)
                )
            ).all()
            steps: dict[str, builtins.list[StepRow]] = {row.id: [] for row in rows}
            if steps:
                step_rows = await connection.execute(
                    select(STEPS)
                    .join(RUNS, RUNS.c.id == STEPS.c.run_id)
                    .where(RUNS.c.status.in_(UNFINISHED))
                    .order_by(STEPS.c.run_id, STEPS.c.seq)
                )
                for step in step_rows:
                    if step.run_id in steps:  # not a run that became unfinished since
                        steps[step.run_id].append(_step_row(step._mapping))
        return [_run_record(row._mapping, steps[row.id]) for row in rows]

    async def claim(self, run_id: str, *, owner: str, previous: str | None) -> bool:
        """Make `owner` the run's owner if it is unfinished and still owned by `previous`:
        of several processes claiming one run, exactly one gets True."""
        held = RUNS.c.owner.is_(None) if previous is None else RUNS.c.owner == previous
        async with self._engines.writer.begin() as connection:
            result = await connection.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.status.in_(UNFINISHED), held)
                .values(owner=owner)
            )
        return bool(result.rowcount)

    async def request_cancel(self, run_id: str) -> None:
        """Ask the process executing the run (its owner) to cancel it: see `cancel_requests`."""
        async with self._engines.writer.begin() as connection:
            await connection.execute(
                upsert(self._engines.dialect, CancelRequest, keys=("run_id",), update=()),
                {"run_id": run_id, "requested_at": utc_now()},
            )

    async def cancel_requests(self, owner: str) -> builtins.list[str]:
        """The runs of `owner` somebody asked to cancel (`request_cancel`), oldest request
        first; the requests are taken, so each is handed out once (to the owner, who alone
        asks for its own)."""
        async with self._engines.reader.connect() as connection:  # asked often, seldom any
            requested = builtins.list(
                await connection.scalars(
                    select(CancelRequest.run_id)
                    .join(Run, Run.id == CancelRequest.run_id)
                    .where(Run.owner == owner)
                    .order_by(CancelRequest.requested_at)
                )
            )
        if requested:
            async with self._engines.writer.begin() as connection:
                await connection.execute(
                    delete(CancelRequest).where(CancelRequest.run_id.in_(requested))
                )
        return requested

    async def set_status(
        self,
        run_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Set the run's status; `error` and `finished_at` too when given. NotFound."""
        _check_status(status)
        values: dict[str, Any] = {"status": status}
        if error is not None:
            values["error"] = error
        if finished_at is not None:
            values["finished_at"] = _time(finished_at)
        async with self._engines.writer.begin() as connection:
            result = await connection.execute(
                update(RUNS).where(RUNS.c.id == run_id).values(**values)
            )
        if not result.rowcount:
            raise NotFound(f"There is no run with id {run_id}.")

    async def delete_steps_after(self, run_id: str, seq: int) -> None:
        """Drop the run's steps numbered above `seq` (before resuming it from there)."""
        async with self._engines.writer.begin() as connection:
            await connection.execute(
                delete(STEPS).where(STEPS.c.run_id == run_id, STEPS.c.seq > seq)
            )

    async def _exists(self, run_id: str) -> bool:
        async with self._engines.reader.connect() as connection:
            found = await connection.scalar(select(RUNS.c.id).where(RUNS.c.id == run_id))
        return found is not None

    async def _write_created(self, rows: builtins.list[dict[str, Any]]) -> None:
        if self._engines.dialect == "sqlite":
            parameters = self._insert_runs.parameters(rows)
            encoded = [(self._insert_runs.sql, parameters)]
            size = self._insert_runs.json_size(parameters)
            try:
                await self._engines.write_sqlite(
                    partial(_execute_many, encoded), urgent=True, size=size
                )
            except sqlite3.IntegrityError as exc:  # as SQLAlchemy would have raised it
                raise IntegrityError(self._insert_runs.sql, None, exc) from exc
            return
        async with self._engines.writer.begin() as connection:
            await self._insert_runs.execute(connection, rows)

    def _run_batches(
        self, runs: Sequence[Mapping[str, Any]]
    ) -> builtins.list[tuple[BulkWrite, builtins.list[dict[str, Any]]]]:
        # Updates of one run are merged; runs changing the same fields share one statement.
        merged: dict[str, dict[str, Any]] = {}
        for run in runs:
            if not run.keys() <= _RUN_UPDATE_KEYS:
                unknown = run.keys() - _RUN_UPDATE_KEYS
                raise ValueError(f"a run update cannot change {sorted(unknown)}")
            if "status" in run:
                _check_status(run["status"])
            merged.setdefault(run["id"], {"id": run["id"]}).update(run)
        batches: dict[tuple[str, ...], builtins.list[dict[str, Any]]] = {}
        now = time.time()  # epoch seconds: the quickest time to encode
        for row in merged.values():
            for name in _TIMES:
                if name in row:
                    row[name] = row[name] or None  # the engine reports "not yet" as 0
            fields = tuple(sorted(row.keys() - {"id"}))
            row.setdefault("status", _PLACEHOLDER_STATUS)  # only used if the run is new
            row["created_at"] = now  # likewise
            batches.setdefault(fields, []).append(row)
        return [(self._run_update(fields), rows) for fields, rows in batches.items()]

    def _run_update(self, fields: tuple[str, ...]) -> BulkWrite:
        statement = self._run_updates.get(fields)
        if statement is None:
            columns = ("id", *dict.fromkeys((*fields, "status", "created_at")))
            statement = BulkWrite(
                upsert(self._engines.dialect, Run, keys=("id",), update=fields),
                columns,
                self._engines.writer.dialect,
            )
            self._run_updates[fields] = statement
        return statement

    def _step_rows(self, steps: Sequence[Mapping[str, Any]]) -> builtins.list[dict[str, Any]]:
        limit = self._max_payload_bytes
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for step in steps:
            row = {**STEP_DEFAULTS, **step}  # keys beyond the columns are not written
            row["input"] = capped_json(row["input"], limit)
            row["output"] = capped_json(row["output"], limit)
            for name in _TIMES:
                row[name] = row[name] or None
            for name in ("logs", "exchanges"):
                if not row[name]:
                    row[name] = _EMPTY_LIST
            rows[(row["run_id"], row["seq"])] = row  # the last state of a step wins
        return list(rows.values())


def new_run_row(record: RunRecord) -> dict[str, Any]:
    """The row that stores a new run (its output, error and times are not known yet)."""
    return {
        "id": record.id,
        "flow_id": record.flow_id,
        "flow_version": record.flow_version,
        "trigger": record.trigger,
        "status": record.status,
        "input": record.input,
        "created_at": record.created_at,
        "owner": record.owner,
    }


def _execute_many(
    writes: Sequence[tuple[str, Sequence[tuple[Any, ...]]]], connection: sqlite3.Connection
) -> None:
    for sql, parameters in writes:
        execute_rows_sqlite(connection, sql, parameters)


def _check_status(status: Any) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"'{status}' is not a run status; use one of {', '.join(RUN_STATUSES)}")


def _time(value: Any) -> datetime | None:
    """Epoch seconds (what the engine reports) as a UTC datetime; 0 and None mean unset."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


def _run_record(row: RowMapping, steps: builtins.list[StepRow]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        flow_id=row["flow_id"],
        flow_version=row["flow_version"],
        trigger=row["trigger"],
        status=row["status"],
        input=row["input"],
        output=row["output"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        steps=steps,
        owner=row["owner"],
    )


def _step_row(row: RowMapping) -> StepRow:
    return StepRow(**row)
