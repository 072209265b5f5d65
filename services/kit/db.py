"""A service's database: a SQLite file by default, or PostgreSQL when the service is given
``MESHMART_DATABASE_URL=postgresql://...`` (``open_database``). Versioned migrations,
explicit write transactions, the same code path on both engines; what differs between
them (SQL, locks, versions, driver) is in services/kit/dialect.py.

Writers get the database's one write lock up front: ``BEGIN IMMEDIATE`` on SQLite, an
advisory transaction lock on PostgreSQL. Two instances of a service (two processes on
one file, or on one PostgreSQL database) therefore serialise their read-check-write
sequences, so e.g. two concurrent reservations cannot both see the same stock and
oversell it.

Nothing here runs on the event loop: a COMMIT may fsync (``synchronous = FULL``), a
write may wait for another process's write lock, and PostgreSQL is a network round trip
per statement. A service awaits ``db.run(fn, *args)``, which runs the plain sync ``fn``
(a store method, that opens ``transaction()`` or uses ``read()``) in this Database's own
thread; the connection is used by that thread alone, so the process's transactions run
one after the other. (Opening the Database migrates on the caller's thread: at start,
before serving.) The mesh test tests/mesh/test_event_loop.py fails if any callback still
blocks the loop. Threads that write concurrently (tests) each open their own Database.

Group commit: when calls queue up behind one another in that thread, it runs the queued
ones as one batch inside one write transaction, each ``transaction()`` of theirs a
SAVEPOINT (released when its block ends, rolled back to when it raises), and COMMITs once
for the batch: one fsync (``synchronous = FULL``) for all of them instead of one each.
Every call that saw the batch's transaction (wrote in it, or read after its first write)
hears its answer only after that COMMIT, so what an answer reports is on disk as before;
if the COMMIT fails, every such call fails with it (none of them was acknowledged). The
reads that ran before the batch's first write saw committed data only and are answered
as soon as they ran, not after the rest of the batch; answers keep the order the calls
ran in. Each call's own transaction is still all
or nothing (its savepoint), and the batch holds the write lock (BEGIN IMMEDIATE, the
advisory lock) from its first write to its COMMIT, so another process's read-check-write
still never interleaves with one of ours. A lone call runs exactly as before.
``run_each(units)`` hands the thread several units at once and keeps them in one batch,
answering each unit's own outcome: the event consumer applies a fetched batch of events
so (services/kit/events/consumer.py), each event's effect and id in a savepoint of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import psycopg

from services.kit.dialect import (
    Engine,
    EngineName,
    PostgresEngine,
    SQLiteEngine,
    Synchronous,
    is_database_url,
    postgres_count,
    split_statements,
    sqlite_count,
)

if TYPE_CHECKING:
    from services.kit.config import ServiceConfig

__all__ = [
    "Connection",
    "Database",
    "DatabaseError",
    "IntegrityError",
    "MigrationError",
    "Row",
    "Synchronous",
    "count_apart",
    "from_row",
    "is_unique_violation",
    "open_database",
    "split_statements",
]

T = TypeVar("T")
P = ParamSpec("P")

# What a store catches, whichever engine it runs on.
DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)


class MigrationError(RuntimeError):
    """The database does not match the migrations this code ships."""


class Row(Protocol):
    """A result row: ``row[0]`` or ``row["column"]``, iterable, ``keys()`` (a sqlite3.Row,
    or dialect.PgRow)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection:
    """What ``transaction()`` and ``read()`` hand a store, on either engine: ``execute``
    and ``executemany`` with SQLite's ``?`` / ``:name`` parameters, rows readable by
    position or by column name."""

    def __init__(self, engine: Engine, in_transaction: Callable[[], bool]) -> None:
        self._engine = engine
        self._in_transaction = in_transaction

    @property
    def engine(self) -> EngineName:
        return self._engine.name

    @property
    def in_transaction(self) -> bool:
        """Inside a ``transaction()`` block (a batch's open transaction around a read does
        not count)."""
        return self._in_transaction()

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Cursor:
        cursor: Cursor = self._engine.execute(sql, params)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> Cursor:
        """``sql`` once per row; the cursor's ``rowcount`` is the rows changed in all."""
        cursor: Cursor = self._engine.executemany(sql, list(rows))
        return cursor


# The most calls one group commit takes from the queue: bounds how long the batch holds
# the write lock (and the first call of it waits for its answer).
MAX_BATCH = 32


@dataclasses.dataclass
class _Unit:
    """One function the run() thread calls (a ``transaction()`` of its own, or a read),
    and its outcome."""

    fn: Callable[[], Any]
    result: Any = None
    error: BaseException | None = None


@dataclasses.dataclass
class _Request:
    """One ``run()`` (one unit) or ``run_each()`` (its units, kept in one batch): the
    caller's future and loop."""

    units: list[_Unit]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    each: bool  # answer every unit's outcome (run_each), not the one unit's (run)
    answered: bool = False


class _Batch:
    """One group commit: the calls that ran while its transaction was open (they wrote
    in it, or read what it holds), whose answers stand only if it commits."""

    def __init__(self) -> None:
        self.exposed: list[_Unit] = []


class Database:
    """A service's database (a SQLite file, or a PostgreSQL URL), migrated to the latest
    version at open."""

    def __init__(
        self,
        target: Path | str,
        migrations: Sequence[str],
        *,
        busy_timeout_ms: int = 5000,
        synchronous: Synchronous = "NORMAL",
    ) -> None:
        # FULL where an acknowledged commit is money (payment, order: their store's
        # SYNCHRONOUS). The others stay NORMAL, the fsync per commit not worth it there:
        # catalog is seeded, a lost cart line or sign-up is redone by the user, a lost
        # reservation makes order's Commit fail (the order is cancelled and refunded),
        # analytics rebuilds from the streams, a lost notification is a message, not money.
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self._engine: Engine
        if is_database_url(target):
            self._engine = PostgresEngine(
                str(target), busy_timeout_ms=busy_timeout_ms, synchronous=synchronous
            )
        else:
            self._engine = SQLiteEngine(
                Path(target), busy_timeout_ms=busy_timeout_ms, synchronous=synchronous
            )
        self._conn = Connection(self._engine, lambda: self._in_unit)
        # Serialises transaction() between threads sharing this object; re-entrant so a
        # nested or interleaved transaction on the event-loop thread fails fast below
        # instead of deadlocking. The run() thread holds it for a whole batch.
        self._write_lock = threading.RLock()
        # Inside a transaction() block (of a lone call, or a savepoint of a batch).
        self._in_unit = False
        # The group commit the run() thread is in, if any (only that thread sets it).
        self._batch: _Batch | None = None
        self.version = self._migrate(migrations)
        # One thread per database: its calls queue here instead of on the loop.
        self._calls: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name=f"db-{self.label}", daemon=True
        )
        self._thread.start()

    @property
    def engine(self) -> EngineName:
        """"sqlite" or "postgresql"."""
        return self._engine.name

    @property
    def label(self) -> str:
        """Short name of the database, for metric labels: "payment.sqlite3", "payment"."""
        return self._engine.label

    @property
    def location(self) -> str:
        """Where the data is: the file, or the URL without its password."""
        return self._engine.location

    @property
    def path(self) -> Path:
        """The SQLite file (a PostgreSQL database has none: see ``location``)."""
        if isinstance(self._engine, SQLiteEngine):
            return self._engine.path
        raise AttributeError(f"{self.location} is a PostgreSQL database, not a file")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` run in this database's thread, awaited without blocking
        the event loop (its answer comes once what it wrote is committed: see group
        commit above). ``fn`` is sync code using ``transaction()`` / ``read()``; the
        caller's context variables (request id, trace) go with it, for its log lines."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        unit = _Unit(functools.partial(contextvars.copy_context().run, fn, *args, **kwargs))
        self._calls.put(_Request([unit], future, loop, each=False))
        return await future

    async def run_each(self, units: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Every one of ``units`` (sync code, as ``run``'s ``fn``) in this database's
        thread, all in one group commit: one write transaction, each unit's
        ``transaction()`` a savepoint of it, one COMMIT. Answered once that COMMIT is
        done, with each unit's outcome in order: what it returned, or the exception it
        raised (its savepoint rolled back, the other units' writes kept). If the COMMIT
        fails, that error is the outcome of every unit that saw the transaction. Never
        split across batches (MAX_BATCH does not cut it); a single unit runs alone."""
        if not units:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[T | Exception]] = loop.create_future()
        self._calls.put(_Request(
            [_Unit(functools.partial(contextvars.copy_context().run, fn)) for fn in units],
            future, loop, each=True,
        ))
        return await future

    def _serve(self) -> None:
        """The run() thread: a lone unit alone when nothing waits behind it, else the
        waiting requests (up to MAX_BATCH units, a run_each whole) as one group commit."""
        while True:
            request = self._calls.get()
            if request is None:
                return
            requests = [request]
            units = list(request.units)
            while len(units) < MAX_BATCH:
                try:
                    more = self._calls.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._calls.put(None)  # stop once this batch is answered
                    break
                requests.append(more)
                units.extend(more.units)
            try:
                if len(units) == 1:
                    self._run_alone(units[0])
                else:
                    self._run_batch(requests)
            except BaseException as error:  # the connection itself failed: keep serving
                _fail([unit for done in requests if not done.answered for unit in done.units],
                      error)
            for done in requests:
                if not done.answered:
                    _answer(done)

    @staticmethod
    def _run_alone(unit: _Unit) -> None:
        try:
            unit.result = unit.fn()
        except BaseException as error:  # the caller's to handle, as it would be inline
            unit.error = error

    def _run_batch(self, requests: list[_Request]) -> None:
        batch = _Batch()
        # Until the batch's first write, what ran read committed data only: its answer is
        # handed back at once instead of after the batch's other units and its COMMIT
        # (the answers keep the order the units ran in).
        early = True
        with self._write_lock:
            self._batch = batch
            try:
                for request in requests:
                    for unit in request.units:
                        self._run_alone(unit)
                        if self._engine.in_transaction():
                            batch.exposed.append(unit)
                    early = early and not self._engine.in_transaction()
                    if early:
                        _answer(request)
                if self._engine.in_transaction():
                    try:
                        self._engine.commit()
                    except BaseException as error:
                        _fail(batch.exposed, error)
            finally:
                self._batch = None
                # Whatever went wrong above, leave no transaction open behind the batch.
                if self._engine.in_transaction():
                    self._engine.rollback()

    def _migrate(self, migrations: Sequence[str]) -> int:
        # Under the write lock, so two instances starting together migrate exactly once.
        with self.transaction():
            current = self._engine.schema_version()
            if current > len(migrations):
                raise MigrationError(
                    f"{self.location} is at schema version {current}, newer than the "
                    f"{len(migrations)} migrations this code knows"
                )
            for version, script in enumerate(migrations[current:], start=current + 1):
                for statement in self._engine.statements(script):
                    self._engine.execute(statement, None)
                self._engine.set_schema_version(version)
            return len(migrations)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """The write lock (``BEGIN IMMEDIATE``, or BEGIN + the advisory lock) ... ``COMMIT``,
        or ``ROLLBACK`` if the block raises. Inside a group commit (the run() thread's
        batch): a SAVEPOINT in the batch's transaction, released or rolled back to."""
        with self._write_lock:
            if self._in_unit or (self._batch is None and self._engine.in_transaction()):
                raise RuntimeError(
                    "a transaction is already open on this database: transactions do not "
                    "nest, and an await inside transaction() lets another RPC start one"
                )
            # Set only by the run() thread, which holds the lock for the whole batch.
            batch = self._batch
            self._in_unit = True
            try:
                if batch is None:
                    yield from self._alone()
                else:
                    yield from self._in_batch(batch)
            finally:
                self._in_unit = False

    def _alone(self) -> Iterator[Connection]:
        self._engine.begin_write()
        try:
            yield self._conn
            self._engine.commit()
        except BaseException:
            self._engine.rollback()
            raise

    def _in_batch(self, batch: _Batch) -> Iterator[Connection]:
        if not self._engine.in_transaction():
            self._engine.begin_write()
        self._engine.execute("SAVEPOINT unit", None)
        try:
            yield self._conn
        except BaseException as error:
            if self._engine.in_transaction():
                self._engine.execute("ROLLBACK TO SAVEPOINT unit", None)
                self._engine.execute("RELEASE SAVEPOINT unit", None)
            else:
                # The engine rolled the whole transaction back (SQLite does on a full
                # disk, an I/O error): what the batch's earlier calls did is gone too.
                _fail(batch.exposed, error)
            raise
        self._engine.execute("RELEASE SAVEPOINT unit", None)

    def read(self) -> Connection:
        """The connection for reads (autocommit: each statement sees committed data).

        A service reads through ``run()`` as it writes (a read on the loop would share the
        connection with the transaction run()'s thread may have open); tests and tools
        may read from anywhere."""
        return self._conn

    def count_apart(self, sql: str) -> int | None:
        """A count (``SELECT count(*) ...``) on a short connection of its own, from any
        thread (the metrics scrape's); None when it cannot be read now."""
        return self._engine.count_apart(sql)

    def close(self) -> None:
        """Answer every call queued so far, then close the connection."""
        self._calls.put(None)
        self._thread.join()
        self._engine.close()


def _fail(units: list[_Unit], error: BaseException) -> None:
    """What ``units`` did did not commit: each fails with ``error`` instead of its answer
    (and ``units`` is emptied: a later COMMIT of the batch holds none of it)."""
    for unit in units:
        unit.result, unit.error = None, error
    units.clear()


def _answer(request: _Request) -> None:
    """Hand ``request``'s outcome to its awaiting coroutine, on its loop."""
    request.answered = True

    def settle() -> None:
        future = request.future
        if future.cancelled():
            return
        if not request.each:
            unit = request.units[0]
            if unit.error is not None:
                future.set_exception(unit.error)
            else:
                future.set_result(unit.result)
            return
        outcomes: list[Any] = []
        for unit in request.units:
            if unit.error is None:
                outcomes.append(unit.result)
            elif isinstance(unit.error, Exception):
                outcomes.append(unit.error)
            else:  # KeyboardInterrupt, SystemExit and the like are not a unit's verdict
                future.set_exception(unit.error)
                return
        future.set_result(outcomes)

    try:
        request.loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more


def open_database(
    config: ServiceConfig,
    file_name: str,
    migrations: Sequence[str],
    *,
    synchronous: Synchronous = "NORMAL",
) -> Database:
    """The service's database: PostgreSQL at ``MESHMART_DATABASE_URL`` when set, else the
    SQLite file ``file_name`` in ``MESHMART_DATA_DIR``."""
    target: Path | str = config.database_url or config.data_dir / file_name
    return Database(target, migrations, synchronous=synchronous)


def count_apart(target: Path | str, sql: str, timeout: float = 1.0) -> int | None:
    """``sql`` (a count) in a service's database (its file, or its PostgreSQL URL) on a
    short read-only connection of its own, without opening or migrating it: for tools
    that read a running service's state. None when it cannot be read (no such file or
    table yet, the server does not answer)."""
    if is_database_url(target):
        return postgres_count(str(target), sql, timeout)
    return sqlite_count(Path(target), sql, timeout)


def is_unique_violation(error: BaseException, table: str, column: str) -> bool:
    """Whether ``error`` is a UNIQUE constraint on ``table.column`` refusing a row."""
    if isinstance(error, sqlite3.IntegrityError):
        return f"{table}.{column}" in str(error)
    if isinstance(error, psycopg.errors.UniqueViolation):
        diag = error.diag
        return diag.table_name == table and f"Key ({column})=" in (diag.message_detail or "")
    return False


def from_row(record: type[T], row: Row | Mapping[str, Any], **converted: Any) -> T:
    """The dataclass ``record`` built from ``row`` (a Row or a mapping), whose columns
    are named like its fields; ``converted`` gives the fields whose column needs
    converting first (``created_at=from_us(row["created_us"])``). A field without a default
    that is neither in the row nor converted raises KeyError naming it."""
    present = set(row.keys())
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(record):  # type: ignore[arg-type]
        if not spec.init or spec.name in converted:
            continue
        if spec.name in present:
            values[spec.name] = row[spec.name]
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise KeyError(f"{record.__name__}.{spec.name}: no such column")
    return record(**values, **converted)
