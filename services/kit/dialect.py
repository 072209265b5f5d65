"""The two engines a service's Database runs on, and everything that differs between
them: this file is the one place where SQL or driver behaviour is told apart.

Stores write one SQL, SQLite's: ``?`` (or ``:name``) parameters, SQLite's DDL types, and
the portable rest (``INSERT ... ON CONFLICT``, ``RETURNING``, row values). Here:

- SQLite (the default): the file as before, ``BEGIN IMMEDIATE`` (the file's one writer
  lock), ``PRAGMA user_version``, ``synchronous`` NORMAL or FULL.
- PostgreSQL (``MESHMART_DATABASE_URL=postgresql://...``), with psycopg 3's sync API on
  the Database's own thread. A write transaction is ``BEGIN`` (READ COMMITTED) then
  ``pg_advisory_xact_lock``: one writer per database at a time, across every process,
  which is exactly what BEGIN IMMEDIATE gives the stores (docs/design.md "PostgreSQL"
  says why not SELECT ... FOR UPDATE or SERIALIZABLE with retry). Migrations run under
  the same lock, in one transaction each (PostgreSQL's DDL is transactional), and the
  version lives in ``meshmart_schema``. ``synchronous`` NORMAL is
  ``synchronous_commit = off``, FULL is ``on``. Queries are rewritten from ``?`` /
  ``:name`` to psycopg's ``%s`` / ``%(name)s``; DDL from SQLite's types to PostgreSQL's
  (``INTEGER`` is 64-bit in SQLite: ``BIGINT``); ``numeric`` results (``sum()`` of
  integers) load as ``int`` as SQLite returns them.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import psycopg
from psycopg.adapt import Loader

Synchronous = Literal["NORMAL", "FULL"]
EngineName = Literal["sqlite", "postgresql"]

URL_SCHEMES = ("postgresql", "postgres")


def is_database_url(target: Path | str) -> bool:
    """Whether ``target`` names a PostgreSQL database (a URL) rather than a SQLite file."""
    return isinstance(target, str) and urlsplit(target).scheme in URL_SCHEMES


class Engine(Protocol):
    """What Database needs from an engine (one connection, used by one thread at a time)."""

    name: EngineName
    # Where the data is, for messages and logs: the file, or the URL without password.
    location: str
    # Short name for thread names and metric labels ("payment.sqlite3", "payment").
    label: str
    raw: Any  # the driver's connection

    def query(self, sql: str, params: Any) -> tuple[str, Any]: ...
    def execute(self, sql: str, params: Any) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Any]) -> Any: ...
    def in_transaction(self) -> bool: ...
    def begin_write(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def schema_version(self) -> int: ...
    def set_schema_version(self, version: int) -> None: ...
    def statements(self, script: str) -> Iterator[str]: ...
    def count_apart(self, sql: str) -> int | None: ...
    def close(self) -> None: ...


# --- SQLite -------------------------------------------------------------------------


class SQLiteEngine:
    name: EngineName = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int, synchronous: Synchronous) -> None:
        self.path = path
        self.location = str(path)
        self.label = path.name
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (the sqlite3 module's
        # implicit transactions would start with a deferred BEGIN, defeating the above).
        # check_same_thread=False: opened (and migrated) on the caller's thread, then used
        # by run()'s thread; the single-writer discipline is enforced by transaction().
        self.raw = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.raw.row_factory = sqlite3.Row
        self.raw.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self.raw.execute("PRAGMA foreign_keys = ON")
        self._set_wal(busy_timeout_ms)
        self.raw.execute(f"PRAGMA synchronous = {synchronous}")

    def _set_wal(self, busy_timeout_ms: int) -> None:
        """journal_mode = WAL, retried until busy_timeout: SQLite may refuse the switch
        with "database is locked" at once, without its busy handler, while another
        process opens the same file (two instances starting together; seen in CI)."""
        deadline = time.monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                self.raw.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def query(self, sql: str, params: Any) -> tuple[str, Any]:
        return sql, params

    def execute(self, sql: str, params: Any) -> sqlite3.Cursor:
        return self.raw.execute(sql, () if params is None else params)

    def executemany(self, sql: str, rows: Sequence[Any]) -> sqlite3.Cursor:
        return self.raw.executemany(sql, rows)

    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def begin_write(self) -> None:
        # The file's write lock, taken up front (waits up to busy_timeout for it).
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        # SQLite may already have rolled back (e.g. disk full), and a failed COMMIT
        # leaves the transaction open: either way, leave the connection clean.
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def schema_version(self) -> int:
        return int(self.raw.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        # PRAGMA does not accept parameters; version is an int we computed.
        self.raw.execute(f"PRAGMA user_version = {int(version)}")

    def statements(self, script: str) -> Iterator[str]:
        return split_statements(script)

    def count_apart(self, sql: str) -> int | None:
        return sqlite_count(self.path, sql)

    def close(self) -> None:
        self.raw.close()


def sqlite_count(path: Path, sql: str, timeout: float = 1.0) -> int | None:
    """``sql`` (a count) on a read-only connection of its own, or None if it fails."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error:
        return None
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return None  # no such table yet, or the file is being replaced
    finally:
        conn.close()


def postgres_count(url: str, sql: str, timeout: float = 1.0) -> int | None:
    """``sql`` (a count) on a short connection of its own, or None if it fails."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
            row = conn.execute(sql).fetchone()
            return None if row is None else int(row[0])
    except psycopg.Error:
        return None


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


# --- PostgreSQL ---------------------------------------------------------------------

# The advisory lock every write transaction of a database takes (advisory locks are per
# database, so services on one server never wait for each other). Any constant would do.
WRITE_LOCK_KEY = 0x6D657368  # "mesh"
SCHEMA_TABLE = "meshmart_schema"

# SQLite DDL -> PostgreSQL DDL, applied in order to each migration statement (outside
# string literals). SQLite's INTEGER holds 64 bits (microsecond stamps): BIGINT.
_DDL_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.I),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\)\s*WITHOUT\s+ROWID\b", re.I), ")"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
)

# A token of SQL as far as parameters care: a quoted string or identifier, a comment, a
# parameter, a cast (::), or anything else one character at a time.
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|\?|:[A-Za-z_]\w*|[^'"?:/-]+|.""",
    re.S,
)


@lru_cache(maxsize=1024)
def postgres_query(sql: str, named: bool) -> str:
    """``sql`` with SQLite's ``?`` (or ``:name`` when ``named``) as psycopg's ``%s`` (or
    ``%(name)s``) outside literals and comments, and every ``%`` doubled, as psycopg
    wants with parameters."""
    out: list[str] = []
    for token in _TOKENS.findall(sql):
        if token == "?" and not named:
            out.append("%s")
        elif named and token.startswith(":") and token != "::" and len(token) > 1:
            out.append(f"%({token[1:]})s")
        else:  # psycopg reads % anywhere, in literals too
            out.append(token.replace("%", "%%"))
    return "".join(out)


def postgres_ddl(statement: str) -> str:
    """A migration statement written for SQLite, in PostgreSQL's types."""
    parts = re.split(r"('(?:[^']|'')*'|--[^\n]*)", statement)
    for index in range(0, len(parts), 2):  # even parts: outside literals and comments
        for pattern, replacement in _DDL_REWRITES:
            parts[index] = pattern.sub(replacement, parts[index])
    return "".join(parts)


# How long opening a PostgreSQL database keeps trying to reach the server.
OPEN_RETRY_SECONDS = 30.0


class PostgresEngine:
    name: EngineName = "postgresql"

    def __init__(self, url: str, *, busy_timeout_ms: int, synchronous: Synchronous) -> None:
        self.url = url
        parts = urlsplit(url)
        self.database = parts.path.lstrip("/") or (parts.username or "")
        self.location = (
            f"{parts.scheme}://{parts.username or ''}@{parts.hostname}:{parts.port}/{self.database}"
        )
        self.label = self.database
        self._settings = {
            # How long BEGIN's advisory lock (or any lock) may wait, like busy_timeout.
            "lock_timeout": f"{int(busy_timeout_ms)}ms",
            # NORMAL: a commit returns before its WAL is flushed (a crash of the server or
            # the machine may lose the last commits; the database never corrupts).
            "synchronous_commit": "on" if synchronous == "FULL" else "off",
        }
        self.raw = self._first_connect()

    def _first_connect(self) -> Any:
        """The first connection, retried for up to OPEN_RETRY_SECONDS while the server
        cannot be reached: in the mesh the database is behind the service's own sidecar
        (tools/mesh/postgres.py), whose listener exists only once Envoy has its config,
        a moment after the process started."""
        deadline = time.monotonic() + OPEN_RETRY_SECONDS
        delay = 0.1
        while True:
            try:
                return self._connect()
            except psycopg.OperationalError as error:
                # A server that answered (a refused role or database: sqlstate set) stays
                # refused; only no answer at all is worth another try.
                if error.sqlstate is not None or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _connect(self) -> Any:
        options = " ".join(f"-c {name}={value}" for name, value in self._settings.items())
        # autocommit: we issue BEGIN/COMMIT ourselves, and a read outside a transaction
        # sees what is committed, statement by statement, as on SQLite.
        raw = psycopg.connect(
            self.url, autocommit=True, options=options, connect_timeout=10, row_factory=_row
        )
        raw.adapters.register_loader("numeric", _IntegralNumericLoader)
        return raw

    def _live(self) -> Any:
        # A server restart breaks the connection: the next unit of work reconnects (the one
        # that met the break failed, and nothing of it committed).
        if self.raw.closed or self.raw.broken:
            self.raw = self._connect()
        return self.raw

    def query(self, sql: str, params: Any) -> tuple[str, Any]:
        if not params:
            return sql, None
        return postgres_query(sql, isinstance(params, dict)), params

    def execute(self, sql: str, params: Any) -> Any:
        query, values = self.query(sql, params)
        return self._live().execute(query, values)

    def executemany(self, sql: str, rows: Sequence[Any]) -> Any:
        if not rows:
            return _NO_ROWS
        cursor = self._live().cursor()
        cursor.executemany(postgres_query(sql, isinstance(rows[0], dict)), rows)
        return cursor

    def in_transaction(self) -> bool:
        if self.raw.closed:
            return False  # broken (a server restart): the next unit of work reconnects
        status = self.raw.info.transaction_status
        return bool(status != psycopg.pq.TransactionStatus.IDLE)

    def begin_write(self) -> None:
        conn = self._live()
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if not self.raw.closed and self.in_transaction():
            self.raw.execute("ROLLBACK")

    def schema_version(self) -> int:
        self.raw.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} ("
            " singleton INTEGER PRIMARY KEY CHECK (singleton = 1), version INTEGER NOT NULL)"
        )
        row = self.raw.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchone()
        return 0 if row is None else int(row[0])

    def set_schema_version(self, version: int) -> None:
        self.raw.execute(
            f"INSERT INTO {SCHEMA_TABLE} (singleton, version) VALUES (1, %s)"
            " ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            (version,),
        )

    def statements(self, script: str) -> Iterator[str]:
        for statement in split_statements(script):
            yield postgres_ddl(statement)

    def count_apart(self, sql: str) -> int | None:
        return postgres_count(self.url, sql)

    def close(self) -> None:
        self.raw.close()


class _NoRows:
    """What ``executemany`` of no rows returns: nothing changed (as SQLite's cursor says)."""

    rowcount = 0

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


_NO_ROWS = _NoRows()


class PgRow:
    """A PostgreSQL result row read like a sqlite3.Row: by position or by column name,
    iterable, with ``keys()``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: tuple[Any, ...], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PgRow):
            return self._values == other._values and self._index == other._index
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))!r})"


def _row(cursor: Any) -> Any:
    """psycopg row factory: PgRow, whose column index is built once per result."""
    description = cursor.description
    if description is None:
        return tuple
    index = {column.name: number for number, column in enumerate(description)}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(tuple(values), index)

    return make


class _IntegralNumericLoader(Loader):
    """``numeric`` as ``int`` when it is whole (``sum()`` of BIGINT is numeric in
    PostgreSQL, an integer in SQLite), else ``float``."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)
