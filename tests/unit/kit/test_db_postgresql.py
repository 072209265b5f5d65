"""Database on PostgreSQL: the same migrations and guarantees as on SQLite, and one
database and one role per service that no other service's role can read.

Against the session's own cluster (harness/postgres.py: initdb in a temp directory, a
free port of 127.0.0.1), each test on databases of its own.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from harness.postgres import Databases
from services.kit.db import Database, MigrationError, is_unique_violation
from services.kit.dialect import postgres_ddl, postgres_query
from tools.postgres import PostgresCluster

# Every service that keeps state: (module of its store, the SQLite file it uses).
STORES = {
    "user": ("services.user.store", "user.sqlite3"),
    "catalog": ("services.catalog.store", "catalog.sqlite3"),
    "inventory": ("services.inventory.store", "inventory.sqlite3"),
    "cart": ("services.cart.store", "cart.sqlite3"),
    "payment": ("services.payment.store", "payment.sqlite3"),
    "order": ("services.order.store", "order.sqlite3"),
    "notification": ("services.notification.store", "notification.sqlite3"),
    "analytics": ("services.analytics.store", "analytics.sqlite3"),
}

V1 = """
CREATE TABLE product (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT 'a;b', stamp_us INTEGER);
INSERT INTO product (id) VALUES ('seed');
"""
V2 = "CREATE TABLE stock (product_id TEXT NOT NULL REFERENCES product (id), units INTEGER);"


@pytest.fixture
def pg(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[Databases]:
    found = Databases("postgresql", tmp_path, postgres_cluster)
    try:
        yield found
    finally:
        found.drop()


def _columns_sqlite(db: Database) -> set[tuple[str, str]]:
    tables = [
        row[0]
        for row in db.read().execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        (table, row["name"])
        for table in tables
        for row in db.read().execute(f"SELECT name FROM pragma_table_info('{table}')")
    }


def _columns_postgres(db: Database) -> set[tuple[str, str]]:
    rows = db.read().execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name <> 'meshmart_schema'"
    )
    return {(row[0], row[1]) for row in rows}


@pytest.mark.parametrize("service", sorted(STORES))
def test_every_service_migrates_to_the_same_tables_on_both_engines(
    service: str, pg: Databases, tmp_path: Path
) -> None:
    module, file_name = STORES[service]
    migrations = importlib.import_module(module).MIGRATIONS
    on_sqlite = Database(tmp_path / file_name, migrations)
    on_postgres = Database(pg.target(service, file_name), migrations)
    try:
        assert on_postgres.engine == "postgresql"
        assert on_postgres.version == on_sqlite.version == len(migrations)
        assert _columns_postgres(on_postgres) == _columns_sqlite(on_sqlite)
    finally:
        on_sqlite.close()
        on_postgres.close()


def test_migrations_apply_once_and_record_the_version(pg: Databases) -> None:
    url = pg.target("catalog", "")
    db = Database(url, [V1])
    assert db.version == 1
    db.close()
    db = Database(url, [V1, V2])  # only V2 runs; V1's seed row is not duplicated
    try:
        assert db.read().execute("SELECT version FROM meshmart_schema").fetchone()[0] == 2
        assert db.read().execute("SELECT count(*) FROM product").fetchone()[0] == 1
        # INTEGER is 64-bit, as in SQLite: a microsecond stamp fits.
        with db.transaction() as conn:
            conn.execute("UPDATE product SET stamp_us = ?", (1_764_633_600_000_000,))
    finally:
        db.close()
    with pytest.raises(MigrationError, match="schema version 2"):
        Database(url, [V1])


def test_a_failed_migration_leaves_nothing_behind(pg: Databases) -> None:
    url = pg.target("catalog", "")
    Database(url, [V1]).close()
    with pytest.raises(psycopg.errors.SyntaxError):
        Database(url, [V1, "CREATE TABLE ok (x TEXT);\nCREATE TABLE broken ("])
    db = Database(url, [V1])
    try:
        assert db.version == 1
        missing = db.read().execute("SELECT to_regclass('ok') IS NULL").fetchone()[0]
        assert missing is True  # the transactional DDL rolled back with the failure
    finally:
        db.close()


def test_second_writer_waits_for_the_write_lock(pg: Databases) -> None:
    url = pg.target("inventory", "")
    first = Database(url, [V1])
    second = Database(url, [V1], busy_timeout_ms=100)
    try:
        with first.transaction():
            # As BEGIN IMMEDIATE: a second writer cannot even start its read-check-write
            # while the first is open (here it gives up after its lock timeout).
            with pytest.raises(psycopg.errors.LockNotAvailable), second.transaction():
                pass
        assert not second.read().in_transaction
        with second.transaction() as conn:
            conn.execute("INSERT INTO product (id) VALUES (?)", ("after",))
        assert first.read().execute("SELECT count(*) FROM product").fetchone()[0] == 2
    finally:
        first.close()
        second.close()


def test_writers_of_two_processes_see_each_others_commits(pg: Databases) -> None:
    """Read-check-write under the lock: 20 threads, each with its own connection, add one
    to a counter they read first; no increment is lost."""
    url = pg.target("inventory", "")
    setup = Database(url, [V1, V2])
    with setup.transaction() as conn:
        conn.execute("INSERT INTO stock (product_id, units) VALUES ('seed', 0)")
    racers = [Database(url, [V1, V2]) for _ in range(20)]
    start = threading.Barrier(len(racers))

    def bump(db: Database) -> None:
        start.wait()
        with db.transaction() as conn:
            units = conn.execute("SELECT units FROM stock").fetchone()[0]
            conn.execute("UPDATE stock SET units = ?", (units + 1,))

    threads = [threading.Thread(target=bump, args=(db,)) for db in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert setup.read().execute("SELECT units FROM stock").fetchone()[0] == len(racers)
    finally:
        for db in [setup, *racers]:
            db.close()


def test_rollback_on_error_and_unique_violations_are_told_apart(pg: Databases) -> None:
    db = Database(pg.target("user", ""), [V1])
    try:
        with pytest.raises(psycopg.IntegrityError) as error, db.transaction() as conn:
            conn.execute("INSERT INTO product (id) VALUES ('fresh')")
            conn.execute("INSERT INTO product (id) VALUES ('seed')")
        assert is_unique_violation(error.value, "product", "id")
        assert not is_unique_violation(error.value, "product", "name")
        assert not db.read().in_transaction
        assert db.read().execute("SELECT count(*) FROM product").fetchone()[0] == 1
    finally:
        db.close()


def test_the_catalog_role_cannot_read_the_payment_database(
    pg: Databases, postgres_cluster: PostgresCluster
) -> None:
    payment_url = str(pg.target("payment", ""))
    payment = Database(payment_url, importlib.import_module("services.payment.store").MIGRATIONS)
    with payment.transaction() as conn:  # something worth stealing
        conn.execute(
            "INSERT INTO payments VALUES ('pay-1', 'k', 'o', 'u', 100, 'EUR', 'CAPTURED', '',"
            " '4242', 1, 1)"
        )
    payment.close()
    payment_db = urlsplit(payment_url).path.lstrip("/")
    # The catalog service's own role, password and all, pointed at payment's database.
    catalog = urlsplit(str(pg.target("catalog", "")))
    assert catalog.username == "catalog"
    as_catalog = catalog._replace(path=f"/{payment_db}").geturl()

    # The payment database admits only its own role: catalog cannot even connect.
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(as_catalog)

    # Even let in (CONNECT granted by the superuser), catalog cannot read a table.
    with postgres_cluster.superuser() as admin:
        admin.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO catalog").format(sql.Identifier(payment_db))
        )
    with (
        psycopg.connect(as_catalog) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table"),
    ):
        conn.execute("SELECT * FROM payments")


def test_queries_are_rewritten_for_psycopg_outside_literals() -> None:
    assert postgres_query("SELECT ? WHERE a = '?' AND b LIKE 'x%'", named=False) == (
        "SELECT %s WHERE a = '?' AND b LIKE 'x%%'"
    )
    assert postgres_query("UPDATE t SET a = :now WHERE b <= :now -- :not", named=True) == (
        "UPDATE t SET a = %(now)s WHERE b <= %(now)s -- :not"
    )
    assert postgres_query("SELECT x::text FROM t WHERE y = ?", named=False) == (
        "SELECT x::text FROM t WHERE y = %s"
    )
    assert postgres_ddl(
        "CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB, n INTEGER,"
        " note TEXT DEFAULT 'INTEGER') WITHOUT ROWID"
    ) == (
        "CREATE TABLE t (seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body BYTEA,"
        " n BIGINT, note TEXT DEFAULT 'INTEGER')"
    )
