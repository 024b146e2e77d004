"""How FlowLoom connects to SQLite and PostgreSQL: URLs, connection pools and SQLite pragmas.

SQLite gets two pools on the same file:

- one writer connection, so this process's write transactions queue in asyncio instead of
  fighting over SQLite's file lock; each of them starts with `BEGIN IMMEDIATE`, which makes
  another process (`flowloom db prune` beside the studio) wait its turn (`busy_timeout`)
  instead of failing halfway through a transaction. The hot writes (run creation, recorded
  steps) use it right on the event loop's thread (see `DatabaseEngines.write_sqlite`);
- a few read-only connections: in WAL mode readers never wait for the writer.

Every connection turns on `foreign_keys` (deleting a flow cascades) and `busy_timeout`; the
file is put in WAL mode with `synchronous=NORMAL`, which survives a crash of the process
(only a power cut can lose the last transactions) and saves an fsync per commit. The WAL is
folded back into the file by a connection of its own in the background (`_WalCheckpoints`),
not inside the commit that happens to cross SQLite's threshold.
PostgreSQL (asyncpg) gets one ordinary pool for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import structlog
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, NullPool

from storage.jsontext import JSONText, dumps
from storage.records import StorageError

T = TypeVar("T")

log = structlog.get_logger("flowloom.storage")

BUSY_TIMEOUT_MS = 10_000
SQLITE_READERS = 4
POSTGRES_POOL_SIZE = 10
# Writers queue for the one SQLite writer connection; a long VACUUM must not make them fail.
WRITER_WAIT_S = 600.0
# How long the hot writes keep the writer connection between them, and at most in all.
HOT_IDLE_S = 0.005
HOT_HOLD_S = 0.05
# Hot writes up to this many bytes of JSON run on the event loop's own thread (see
# `DatabaseEngines.write_sqlite`); bigger ones on the driver's thread.
INLINE_MAX_BYTES = 256 * 1024
# How often the WAL is folded back into the database file, and how long it may grow before
# the writer does it itself (a safety net: only if the background checkpoints stop).
CHECKPOINT_EVERY_S = 0.25
WRITER_CHECKPOINT_PAGES = 10_000

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def database_url(url: str | URL) -> URL:
    """`url` with its async driver: `sqlite://…` and `postgresql://…` are accepted too."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"'{url}' is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise StorageError(
            f"FlowLoom stores its data in SQLite or PostgreSQL, not {backend}: use a URL such as "
            "sqlite+aiosqlite:///path/flowloom.db or postgresql+asyncpg://user@host/flowloom."
        )
    parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "sqlite" and sqlite_file(parsed) is None:
        raise StorageError(
            f"'{url}' is an in-memory SQLite database, which would lose everything at exit: "
            "give a file, such as sqlite+aiosqlite:///path/flowloom.db."
        )
    return parsed


def describe(url: URL) -> str:
    """The URL for messages and logs, password hidden."""
    return url.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL (and an in-memory SQLite database)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):  # a URI filename: file:path?mode=…
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def _adapt_quickly() -> None:
    """Let the sqlite3 module bind None and JSON text without its adaptation protocol.

    sqlite3 binds exact ints, floats and strs directly; anything else, None included, goes
    through `__adapt__`/`__conform__` lookups that raise and swallow two AttributeErrors per
    value, about a twentieth of a stored run's CPU. A registered adapter is found first.
    """
    sqlite3.register_adapter(type(None), _none)
    sqlite3.register_adapter(JSONText, str)


def _none(value: None) -> None:
    return value


def create_engines(url: URL) -> tuple[AsyncEngine, AsyncEngine]:
    """(reader, writer) engines for `url`; the same engine twice on PostgreSQL."""
    if url.get_backend_name() == "postgresql":
        engine = create_async_engine(
            url,
            json_serializer=dumps,
            pool_size=POSTGRES_POOL_SIZE,
            max_overflow=POSTGRES_POOL_SIZE,
        )
        return engine, engine

    _adapt_quickly()
    writer = create_async_engine(
        url,
        json_serializer=dumps,
        # The hot writes use the writer connection from the event loop's thread too.
        connect_args={"check_same_thread": False},
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=WRITER_WAIT_S,
        # Every use of the writer ends its own transaction (commit or rollback), so the
        # pool's rollback on return would only cost one more trip to the driver's thread.
        pool_reset_on_return=None,
    )
    _configure_sqlite(writer, writes=True)
    reader = create_async_engine(
        url,
        json_serializer=dumps,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=SQLITE_READERS,
        max_overflow=SQLITE_READERS,
    )
    _configure_sqlite(reader, writes=False)
    return reader, writer


def create_migration_engine(url: URL) -> AsyncEngine:
    """An engine for one migration: no pool (its connection closes with the migration);
    on SQLite, DDL inside `BEGIN IMMEDIATE` so a failed migration leaves nothing behind,
    and foreign keys off, as table rebuilds in SQLite migrations require."""
    engine = create_async_engine(url, json_serializer=dumps, poolclass=NullPool)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, writes=True, foreign_keys=False)
    return engine


def _configure_sqlite(engine: AsyncEngine, *, writes: bool, foreign_keys: bool = True) -> None:
    pragmas = [f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"]
    pragmas.append(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
    if writes:
        pragmas += [
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
            f"PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}",
        ]
    else:
        pragmas.append("PRAGMA query_only = ON")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        if writes:
            # SQLAlchemy, not the sqlite3 module, begins transactions (see `_begin` below).
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    if writes:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Connection) -> None:
            # Take the write lock now, so the transaction's reads and writes see one state.
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _in_transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    return _finish(connection, work)


def _in_transaction_unless_busy(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]
) -> T | _Busy:
    """`_in_transaction`, or `BUSY` at once (nothing done) if another connection holds the
    write lock: the caller is the event loop's thread, which must not wait for it."""
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return BUSY
        raise
    finally:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return _finish(connection, work)


def _finish(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the first error is the one to tell
                connection.execute("ROLLBACK")
        raise
    return result


class _Busy:
    """What `_in_transaction_unless_busy` returns when the write lock is taken."""


BUSY = _Busy()


class _Turns:
    """A lock whose urgent waiters go first: `async with turns.take(urgent=True): …`.

    The hot writes share one connection; a caller waiting for its run to be stored (urgent)
    should not queue behind the recorder's batches of finished steps, which nobody awaits.
    Urgent writes come in group commits, one waiting at a time, so the others still get
    every other turn.
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    def locked(self) -> bool:
        return self._busy

    @asynccontextmanager
    async def take(self, *, urgent: bool = False) -> AsyncIterator[None]:
        if self._busy or any(self._waiting):
            turn = asyncio.get_running_loop().create_future()
            queue = self._waiting[0 if urgent else 1]
            queue.append(turn)
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._pass_on()  # the turn came as the wait was cancelled
                else:
                    queue.remove(turn)
                raise
        self._busy = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        for queue in self._waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # still busy: the turn goes straight to it
                    return
        self._busy = False


class _HotWriter:
    """The SQLite writer connection, kept checked out of its pool for back-to-back writes.

    It goes back to the pool once no write came for `HOT_IDLE_S`, or after `HOT_HOLD_S` of
    use, so other writers (flow saves, pruning) wait at most that long for their turn.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._turns = _Turns()
        self._held: tuple[AsyncConnection, Any] | None = None
        self._since = self._last = 0.0
        self._watch: asyncio.Task[None] | None = None

    async def write(self, work: Callable[[sqlite3.Connection], T], *, urgent: bool, size: int) -> T:
        async with self._turns.take(urgent=urgent):
            loop = asyncio.get_running_loop()
            if self._held is None:
                connection = await self._engine.connect()
                try:
                    raw = await connection.get_raw_connection()
                except BaseException:
                    await connection.close()
                    raise
                self._held = (connection, raw.driver_connection)
                self._since = loop.time()
                self._watch = loop.create_task(self._release_when_idle())
            driver = self._held[1]
            try:
                result: T | _Busy = BUSY
                if size <= INLINE_MAX_BYTES:
                    result = _in_transaction_unless_busy(driver._conn, work)
                if result is BUSY:
                    result = await driver._execute(_in_transaction, driver._conn, work)
            finally:
                self._last = loop.time()
                if self._last - self._since >= HOT_HOLD_S:
                    await self._give_back()
            return cast(T, result)

    async def release(self) -> None:
        """Give the connection back to its pool now (before the engine is disposed)."""
        async with self._turns.take():
            await self._give_back()

    async def _release_when_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while self._held is not None:
            await asyncio.sleep(HOT_IDLE_S)
            if not self._turns.locked() and loop.time() - self._last >= HOT_IDLE_S:
                async with self._turns.take():
                    await self._give_back()

    async def _give_back(self) -> None:
        held, self._held = self._held, None
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        if held is not None:
            await held[0].close()


class _WalCheckpoints:
    """Folds an SQLite file's WAL back into it every `CHECKPOINT_EVERY_S`, from a connection
    of its own on a thread of its own.

    Left to itself, SQLite checkpoints inside the commit that takes the WAL past 1,000 pages:
    that commit (a webhook call's run, say) then copies the pages and waits for their fsync,
    several milliseconds during which every later write queues behind it. A PASSIVE
    checkpoint from another connection does the same work while writers go on.

    The thread owns its connection from opening to closing, so closing can never overlap a
    checkpoint still running (an asyncio task cancelled while it waits for a worker thread
    would close the connection under that thread's feet).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._fold_now_and_then, name="flowloom-wal-checkpoints", daemon=True
            )
            self._thread.start()

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            await asyncio.to_thread(thread.join)

    def _fold_now_and_then(self) -> None:
        wal = self._path.with_name(self._path.name + "-wal")
        folded_at = None
        connection = sqlite3.connect(self._path, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            while not self._stopping.wait(CHECKPOINT_EVERY_S):
                written_at = _modified_ns(wal)
                if written_at == folded_at:  # nothing written since: an idle studio sleeps
                    continue
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # the writer's own checkpoints take over meanwhile
                    log.warning("could not fold the WAL into the database file", error=str(exc))
                else:
                    folded_at = written_at
        finally:
            connection.close()


def _modified_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class DatabaseEngines:
    """What every repository shares: the reader and writer engines and their sessions."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.dialect = url.get_backend_name()
        self.reader, self.writer = create_engines(url)
        self._read_sessions = async_sessionmaker(self.reader, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self.writer, expire_on_commit=False)
        self._hot = _HotWriter(self.writer)
        database_file = sqlite_file(url)
        self._checkpoints = _WalCheckpoints(database_file) if database_file else None

    def start(self) -> None:
        """Start the upkeep that runs beside the writes (SQLite: WAL checkpoints)."""
        if self._checkpoints is not None:
            self._checkpoints.start()

    def reading(self) -> AsyncSession:
        """A session for reads: `async with engines.reading() as session: …`."""
        return self._read_sessions()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, committed when the block ends without error."""
        async with self._write_sessions.begin() as session:
            yield session

    async def write_sqlite(
        self, work: Callable[[sqlite3.Connection], T], *, urgent: bool = False, size: int = 0
    ) -> T:
        """Run `work(connection)` inside one `BEGIN IMMEDIATE … COMMIT` on the SQLite writer
        connection, where going through SQLAlchemy costs a trip to the driver's thread per
        statement. Rolled back if `work` raises.

        A write of at most `INLINE_MAX_BYTES` (`size`: about how many bytes it writes) runs
        right here, on the event loop's thread: it takes well under a millisecond, less than
        handing it to another thread costs. The sqlite3 module lets go of the GIL at every
        statement and takes it back after, and while the event loop's thread is busy each
        take waits for it: on a busy server that made every write a handful of thread
        switches (measured: 2 per webhook answer, a quarter of the server's CPU). Bigger
        writes, and any write while another connection holds the write lock (another
        process's, which may keep it a while), go to the driver's thread and wait there.

        Checking the writer out of its pool is itself a trip, so while these writes come one
        after another the connection stays checked out (see `_HotWriter`). `urgent` writes
        (somebody waits for them) take their turn before the others.

        This reaches into aiosqlite (its sqlite3 connection and the thread that owns it),
        which has no public call for it; the hot writes (run creation, the recorder's
        batches) use it, everything else goes through SQLAlchemy.
        """
        assert self.dialect == "sqlite", "write_sqlite is for SQLite databases"
        return await self._hot.write(work, urgent=urgent, size=size)

    async def dispose(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.stop()
        await self._hot.release()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
