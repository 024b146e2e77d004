"""The fast path for the recorder's writes: driver-level executemany, and group commit.

The recorder writes thousands of step rows a second. SQLAlchemy's per-value type processing
costs more than SQLite's own work on such rows, so `BulkWrite` lets SQLAlchemy compile the
statement once and encodes the rows itself, the way the column types would: JSON as text,
times as the database stores them (UTC text on SQLite, aware datetimes for asyncpg).
Reads go through SQLAlchemy as usual and cannot tell the difference.

`GroupCommit` lets concurrent callers share one transaction: each waits until its own row is
committed, and under load many rows go in each commit.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import operator
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from storage.jsontext import JSONText, dumps
from storage.models import UTCDateTime

Item = TypeVar("Item")


def encode_json(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is JSONText:
        return value
    return dumps(value)


def _as_utc(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(value, UTC)


def encode_time_for_sqlite(value: datetime | float | None) -> str | None:
    """A time (datetime or epoch seconds) as SQLAlchemy's SQLite DATETIME stores it, in UTC."""
    if value is None:
        return None
    if type(value) is float and value >= 0:  # what the engine reports: the common case
        second = int(value)
        micro = round((value - second) * 1_000_000)  # half to even, as datetime rounds
        if micro == 1_000_000:
            second, micro = second + 1, 0
        return f"{_second_text(second)}.{micro:06d}"
    v = _as_utc(value)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


@functools.lru_cache(maxsize=64)
def _second_text(epoch_second: int) -> str:
    """'YYYY-MM-DD HH:MM:SS' in UTC; a busy server writes many times within one second."""
    return datetime.fromtimestamp(epoch_second, UTC).strftime("%Y-%m-%d %H:%M:%S")


def encode_time_for_postgresql(value: datetime | float | None) -> datetime | None:
    """A time (datetime or epoch seconds) as an aware datetime, what asyncpg takes."""
    return None if value is None else _as_utc(value)


class BulkWrite:
    """An INSERT statement compiled once for `columns`, run as a driver-level executemany.

    Rows are dicts by column name; JSON columns take any JSON-able value (or `JSONText`),
    time columns a datetime or epoch seconds.
    """

    def __init__(self, statement: Insert, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self.sql = str(compiled)
        table_columns = statement.table.c
        encode_time = (
            encode_time_for_sqlite if dialect.name == "sqlite" else encode_time_for_postgresql
        )
        names = list(compiled.positiontup or ())
        self._encoders: list[tuple[int, Callable[[Any], Any]]] = []
        self._json_positions: list[int] = []
        for position, name in enumerate(names):
            column_type = table_columns[name].type
            if isinstance(column_type, JSON):
                self._encoders.append((position, encode_json))
                self._json_positions.append(position)
            elif isinstance(column_type, UTCDateTime):
                self._encoders.append((position, encode_time))
        # the row's values in the statement's order, fetched in one C call
        self._values: Callable[[dict[str, Any]], Sequence[Any]] = (
            operator.itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
        )

    async def execute(self, connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        await connection.exec_driver_sql(self.sql, self.parameters(rows))

    def parameters(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """The rows as the driver takes them (for `executemany(self.sql, …)`)."""
        values, encoders = self._values, self._encoders
        parameters = []
        for row in rows:
            row_values = list(values(row))
            for position, encode in encoders:
                row_values[position] = encode(row_values[position])
            parameters.append(tuple(row_values))
        return parameters

    def json_size(self, parameters: Sequence[tuple[Any, ...]]) -> int:
        """How many characters of JSON `parameters` (from `parameters`) hold: about how big
        a write they make."""
        positions = self._json_positions
        return sum(len(row[position] or "") for row in parameters for position in positions)


#: On SQLite, rows are inserted this many at a time at most, in one statement each.
SQLITE_ROWS_PER_STATEMENT = 64


def execute_rows_sqlite(
    connection: sqlite3.Connection, sql: str, parameters: Sequence[tuple[Any, ...]]
) -> None:
    """`executemany(sql, parameters)` for a one-row `INSERT … VALUES (?, …)` statement, done as
    multi-row INSERTs of 64, 32, … 1 rows.

    sqlite3 lets go of the GIL around every statement step and takes it back after, and
    executemany steps once per row: on a busy server each of those is a handover to the event
    loop's thread and back. A multi-row INSERT steps once for all its rows. Row counts are
    split in powers of two, so a few statements, prepared once, serve every batch.
    """
    start, left = 0, len(parameters)
    while left:
        size = min(SQLITE_ROWS_PER_STATEMENT, 1 << (left.bit_length() - 1))
        group = parameters[start : start + size]
        connection.execute(_rows_sql(sql, size), tuple(itertools.chain.from_iterable(group)))
        start += size
        left -= size


@functools.lru_cache(maxsize=256)
def _rows_sql(sql: str, rows: int) -> str:
    """`sql` (one `VALUES (?, …)` group) with `rows` groups of placeholders."""
    if rows == 1:
        return sql
    start = sql.index(" VALUES (") + len(" VALUES ")
    end = sql.index(")", start) + 1
    return f"{sql[:start]}{', '.join([sql[start:end]] * rows)}{sql[end:]}"


class GroupCommit(Generic[Item]):
    """Writes submitted items in shared transactions: `await submit(item)` returns once the
    item is committed, or raises what writing it raised.

    While one batch is being written, new items queue for the next one. If a batch fails,
    its items are retried one by one, so a bad item fails only its own caller.
    """

    def __init__(self, write: Callable[[list[Item]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[tuple[Item, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        await future

    async def _write_pending(self) -> None:
        batch: list[tuple[Item, asyncio.Future[None]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._write([item for item, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                    else:
                        for item, future in batch:
                            await self._write_alone(item, future)
                else:
                    for _, future in batch:
                        _settle(future, None)
        except BaseException:  # cancelled (shutdown): nobody may wait forever
            for _, future in [*batch, *self._pending]:
                future.cancel()
            self._pending = []
            raise
        finally:
            self._writer = None

    async def _write_alone(self, item: Item, future: asyncio.Future[None]) -> None:
        try:
            await self._write([item])
        except Exception as exc:
            _settle(future, exc)
        else:
            _settle(future, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # its caller was cancelled
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
