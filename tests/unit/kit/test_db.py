"""Database: migrations run once and are versioned; transactions roll back on error."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest

from harness.postgres import Databases
from services.kit.db import MAX_BATCH, Database, MigrationError
from services.order.settings import load_settings as load_order_settings
from services.payment.settings import load_settings as load_payment_settings

# PRAGMA synchronous reads back as a number.
SQLITE_SYNCHRONOUS = {"NORMAL": 1, "FULL": 2}

V1 = """
CREATE TABLE product (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT 'a;b');
INSERT INTO product (id) VALUES ('seed');
"""
V2 = """
CREATE TABLE stock (
    product_id TEXT NOT NULL REFERENCES product(id),
    available INTEGER NOT NULL CHECK (available >= 0)
);
CREATE TRIGGER stock_default AFTER INSERT ON product BEGIN
    INSERT INTO stock (product_id, available) VALUES (NEW.id, 0);
END;
"""


def _count(db: Database, table: str) -> int:
    return int(db.read().execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_migrations_apply_once_and_record_the_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "svc.sqlite3"  # parent directories are created
    db = Database(path, migrations=[V1])
    assert db.version == 1
    db.close()

    db = Database(path, migrations=[V1, V2])  # only V2 runs; V1's seed row is not duplicated
    assert db.version == 2
    assert db.read().execute("PRAGMA user_version").fetchone()[0] == 2
    assert _count(db, "product") == 1
    with db.transaction() as conn:
        conn.execute("INSERT INTO product (id) VALUES ('sku-1')")
    assert _count(db, "stock") == 1  # the trigger (with ; inside) was created whole
    db.close()

    db = Database(path, migrations=[V1, V2])  # nothing left to run
    assert _count(db, "product") == 2
    db.close()


def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    Database(tmp_path / "svc.sqlite3", migrations=[V1, V2]).close()
    with pytest.raises(MigrationError, match="schema version 2"):
        Database(tmp_path / "svc.sqlite3", migrations=[V1])


def test_failed_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "svc.sqlite3"
    Database(path, migrations=[V1]).close()
    with pytest.raises(sqlite3.OperationalError):
        Database(path, migrations=[V1, "CREATE TABLE ok (x);\nCREATE TABLE broken ("])
    db = Database(path, migrations=[V1])
    assert db.version == 1
    tables = {row["name"] for row in db.read().execute("SELECT name FROM sqlite_master")}
    assert "ok" not in tables


def test_transaction_rolls_back_on_exception(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1])
    with pytest.raises(RuntimeError, match="boom"), db.transaction() as conn:
        conn.execute("INSERT INTO product (id) VALUES ('sku-2')")
        raise RuntimeError("boom")
    assert _count(db, "product") == 1
    with db.transaction() as conn:
        conn.execute("INSERT INTO product (id) VALUES ('sku-2')")
    row = db.read().execute("SELECT id, name FROM product WHERE id = 'sku-2'").fetchone()
    assert (row["id"], row["name"]) == ("sku-2", "a;b")  # rows are sqlite3.Row


def test_pragmas_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1, V2])
    assert db.read().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
        conn.execute("INSERT INTO stock (product_id, available) VALUES ('nope', 1)")


def test_commits_wait_for_the_disk_as_the_service_chose(tmp_path: Path) -> None:
    default = Database(tmp_path / "svc.sqlite3", migrations=[V1])
    full = Database(tmp_path / "money.sqlite3", migrations=[V1], synchronous="FULL")
    for db, mode in ((default, "NORMAL"), (full, "FULL")):
        assert db.read().execute("PRAGMA synchronous").fetchone()[0] == SQLITE_SYNCHRONOUS[mode]
    with pytest.raises(ValueError, match="synchronous"):
        Database(tmp_path / "bad.sqlite3", migrations=[V1], synchronous="OFF")  # type: ignore[arg-type]


def test_money_paths_are_durable_on_acknowledge() -> None:
    # A charge or an order acknowledged to the client survives a power loss.
    assert load_payment_settings({}).synchronous == "FULL"
    assert load_order_settings({}).synchronous == "FULL"


def test_transactions_do_not_nest(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1])
    with pytest.raises(RuntimeError, match="already open"), db.transaction():
        with db.transaction():
            pass
    assert not db.read().in_transaction


def test_second_process_writer_waits_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "svc.sqlite3"
    first = Database(path, migrations=[V1])
    second = Database(path, migrations=[V1], busy_timeout_ms=50)
    with first.transaction():
        # BEGIN IMMEDIATE takes the write lock up front, so a second writer cannot even
        # start its read-check-write sequence while the first is open.
        with pytest.raises(sqlite3.OperationalError, match="locked"), second.transaction():
            pass
    with second.transaction() as conn:
        conn.execute("INSERT INTO product (id) VALUES ('after')")
    assert _count(first, "product") == 2


def test_failed_commit_rolls_back_and_leaves_the_connection_usable(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1, V2])
    # A deferred foreign-key violation is only detected at COMMIT.
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute("INSERT INTO stock (product_id, available) VALUES ('ghost', 1)")
    assert not db.read().in_transaction
    assert _count(db, "stock") == 0
    with db.transaction() as conn:
        conn.execute("INSERT INTO product (id) VALUES ('sku-3')")
    assert _count(db, "stock") == 1


@contextlib.asynccontextmanager
async def _thread_held(db: Database) -> AsyncIterator[None]:
    """The run() thread busy with another call until the block ends: the calls the block
    starts queue up behind it and run as one group commit once it is free."""
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    busy = asyncio.ensure_future(db.run(hold))
    await asyncio.to_thread(started.wait, 10)
    try:
        yield
        # The block's tasks run up to their enqueue (db.run queues before its first
        # await) before this task resumes: every call is queued when the thread is free.
        await asyncio.sleep(0)
    finally:
        release.set()
        await busy


async def _queued_behind_a_busy_thread(
    db: Database, calls: list[Callable[[], object]]
) -> list[object]:
    """``calls`` queued while the run() thread is busy with another, so they run as one
    group commit; their outcomes (a result, or the exception) in order."""
    async with _thread_held(db):
        queued = [asyncio.ensure_future(db.run(call)) for call in calls]
    return list(await asyncio.gather(*queued, return_exceptions=True))


async def test_queued_calls_commit_together_each_all_or_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1], synchronous="FULL")
    commits: list[str] = []
    db.read().execute("SELECT 1")  # the connection exists; count COMMITs from here
    cast("sqlite3.Connection", db._engine.raw).set_trace_callback(
        lambda sql: commits.append(sql) if sql == "COMMIT" else None)

    def nested() -> None:
        with db.transaction(), db.transaction():
            pass

    outcomes = await _queued_behind_a_busy_thread(
        db, [_inserting(db, "a"), _inserting(db, "bad"), nested, _inserting(db, "b"),
             lambda: _count(db, "product")])
    assert outcomes[0] == "a" and outcomes[3] == "b"
    assert isinstance(outcomes[1], RuntimeError) and "already open" in str(outcomes[2])
    assert outcomes[4] == 3  # the batch's last call reads what the batch wrote
    assert commits == ["COMMIT"]  # one fsync for the batch
    ids = {row[0] for row in db.read().execute("SELECT id FROM product")}
    assert ids == {"seed", "a", "b"}  # the refused call's row is gone, the others stay
    assert not db.read().in_transaction
    db.close()


async def test_a_failed_group_commit_fails_every_call_that_saw_it(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1, V2])

    def ghost() -> str:
        # A deferred foreign-key violation is only detected at COMMIT: the batch's.
        with db.transaction() as conn:
            conn.execute("PRAGMA defer_foreign_keys = ON")
            conn.execute("INSERT INTO stock (product_id, available) VALUES ('ghost', 1)")
        return "ghost"

    def product() -> str:
        with db.transaction() as conn:
            conn.execute("INSERT INTO product (id) VALUES ('sku-9')")
        return "sku-9"

    outcomes = await _queued_behind_a_busy_thread(
        db, [lambda: _count(db, "product"), product, ghost, lambda: _count(db, "stock")])
    # The read before the batch's first write saw committed data only: it stands.
    assert outcomes[0] == 1
    # None of the others is acknowledged: nothing of theirs committed.
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes[1:]), outcomes
    assert _count(db, "product") == 1 and _count(db, "stock") == 0
    assert await db.run(product) == "sku-9"  # the thread serves on
    db.close()


def _inserting(db: Database, product_id: str) -> Callable[[], str]:
    """A unit writing product ``product_id`` in its own transaction(); "bad" is refused."""

    def write() -> str:
        with db.transaction() as conn:
            conn.execute("INSERT INTO product (id) VALUES (?)", (product_id,))
            if product_id == "bad":
                raise RuntimeError("refused")
        return product_id

    return write


async def test_run_each_answers_every_unit_and_rolls_back_only_the_one_that_raised(
    databases: Databases,
) -> None:
    db = Database(databases.target("svc", "svc.sqlite3"), migrations=[V1])
    units = [_inserting(db, name) for name in ("a", "bad", "b")]
    outcomes = await db.run_each([*units, lambda: _count(db, "product")])
    assert outcomes[0] == "a" and outcomes[2] == "b"
    assert isinstance(outcomes[1], RuntimeError)
    assert outcomes[3] == 3  # the last unit reads what the batch wrote
    ids = {row[0] for row in db.read().execute("SELECT id FROM product")}
    assert ids == {"seed", "a", "b"}
    assert await db.run_each([_inserting(db, "c")]) == ["c"]  # a lone unit, alone
    assert await db.run_each([]) == []
    db.close()


async def test_run_each_is_one_commit_even_beyond_the_batch_cap(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1], synchronous="FULL")
    commits: list[str] = []
    db.read().execute("SELECT 1")
    cast("sqlite3.Connection", db._engine.raw).set_trace_callback(
        lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    names = [f"p{i}" for i in range(MAX_BATCH * 2 + 1)]
    assert await db.run_each([_inserting(db, name) for name in names]) == names
    assert commits == ["COMMIT"]
    db.close()


async def test_a_read_ahead_of_a_batchs_first_write_is_answered_before_its_commit(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "svc.sqlite3", migrations=[V1])
    read_answered = threading.Event()

    def slow_write() -> str:
        with db.transaction() as conn:
            conn.execute("INSERT INTO product (id) VALUES ('late')")
            # Still in the batch's transaction: the read before it has its answer already.
            read_answered.wait(10)
        return "late"

    async with _thread_held(db):  # both queued before the thread is free: one batch
        read = asyncio.ensure_future(db.run(_count, db, "product"))
        write = asyncio.ensure_future(db.run(slow_write))
    try:
        assert await asyncio.wait_for(read, 5) == 1  # committed data only
    finally:
        read_answered.set()
    assert await write == "late"
    assert _count(db, "product") == 2
    db.close()
