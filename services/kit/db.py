"""One SQLite file per service: WAL, versioned migrations, explicit write transactions.

Writers use ``BEGIN IMMEDIATE``, which takes the database's write lock up front. Two
instances of a service (two processes on one file) therefore serialise their
read-check-write sequences, so e.g. two concurrent reservations cannot both see the same
stock and oversell it.

Nothing here runs on the event loop: a COMMIT may fsync (``synchronous = FULL``) and a
``BEGIN IMMEDIATE`` may wait up to ``busy_timeout`` for another process's write lock. A
service awaits ``db.run(fn, *args)``, which runs the plain sync ``fn`` (a store method,
that opens ``transaction()`` or uses ``read()``) in this Database's own thread; the
connection is used by that thread alone, so the process's transactions run one after the
other. (Opening the Database migrates on the caller's thread: at start, before serving.)
The mesh test tests/mesh/test_event_loop.py fails if any callback still blocks the loop.
Threads that write concurrently (tests) each open their own Database.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

# How hard a COMMIT waits for the disk (SQLite's PRAGMA synchronous, in WAL mode):
#   NORMAL  fsync at checkpoints only: a power loss (not a crash of the process) can lose
#           the last acknowledged commits; the file never corrupts.
#   FULL    fsync of the WAL on every COMMIT: what a client was told is on disk.
Synchronous = Literal["NORMAL", "FULL"]
T = TypeVar("T")
P = ParamSpec("P")


class MigrationError(RuntimeError):
    """The database file does not match the migrations this code ships."""


class Database:
    """A service's SQLite database, migrated to the latest version at open."""

    def __init__(
        self,
        path: Path | str,
        migrations: Sequence[str],
        *,
        busy_timeout_ms: int = 5000,
        synchronous: Synchronous = "NORMAL",
    ) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (the sqlite3 module's
        # implicit transactions would start with a deferred BEGIN, defeating the above).
        # check_same_thread=False: opened (and migrated) on the caller's thread, then used
        # by run()'s thread; the single-writer discipline is enforced by transaction().
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        # Serialises transaction() between threads sharing this object; re-entrant so a
        # nested or interleaved transaction on the event-loop thread fails fast below
        # instead of deadlocking.
        self._write_lock = threading.RLock()
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA journal_mode = WAL")
        # FULL where an acknowledged commit is money (payment, order: their store's
        # SYNCHRONOUS). The others stay NORMAL, the fsync per commit not worth it there:
        # catalog is seeded, a lost cart line or sign-up is redone by the user, a lost
        # reservation makes order's Commit fail (the order is cancelled and refunded),
        # analytics rebuilds from the streams, a lost notification is a message, not money.
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.version = self._migrate(migrations)
        # One thread per database: its transactions queue here instead of on the loop.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"db-{self.path.stem}")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` run in this database's thread, awaited without blocking
        the event loop. ``fn`` is sync code using ``transaction()`` / ``read()``; the
        caller's context variables (request id, trace) go with it, for its log lines."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def _migrate(self, migrations: Sequence[str]) -> int:
        # Under the write lock, so two instances starting together migrate exactly once.
        with self.transaction() as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current > len(migrations):
                raise MigrationError(
                    f"{self.path} is at schema version {current}, newer than the "
                    f"{len(migrations)} migrations this code knows"
                )
            for version, script in enumerate(migrations[current:], start=current + 1):
                for statement in split_statements(script):
                    conn.execute(statement)
                # PRAGMA does not accept parameters; version is an int we computed.
                conn.execute(f"PRAGMA user_version = {version}")
            return len(migrations)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises."""
        with self._write_lock:
            if self._conn.in_transaction:
                raise RuntimeError(
                    "a transaction is already open on this database: transactions do not "
                    "nest, and an await inside transaction() lets another RPC start one"
                )
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (e.g. disk full), and a failed COMMIT
                # leaves the transaction open: either way, leave the connection clean.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def read(self) -> sqlite3.Connection:
        """The connection for reads (autocommit: each statement sees committed data).

        A service reads through ``run()`` as it writes (a read on the loop would share the
        connection with the transaction run()'s thread may have open); tests and tools
        may read from anywhere."""
        return self._conn

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._conn.close()


def split_statements(script: str) -> Iterator[str]:
    """Split a migration script into statements, respecting strings and trigger bodies.

    ``executescript`` would do this for us but commits any open transaction first,
    which would make migrations non-atomic.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            pending = ""
            if statement.strip(";").strip():
                yield statement
    if pending.strip(";").strip():
        # complete_statement() never accepted it: let SQLite report the syntax error.
        yield pending.rstrip(";")


def from_row(record: type[T], row: sqlite3.Row | Mapping[str, Any], **converted: Any) -> T:
    """The dataclass ``record`` built from ``row`` (a sqlite3.Row or a mapping), whose
    columns are named like its fields; ``converted`` gives the fields whose column needs
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
