"""The stock ledger: stock rows and reservations, changed only under the database's
write lock.

Never oversell: every read-check-write runs inside ``Database.transaction()`` (BEGIN
IMMEDIATE on SQLite, the advisory write lock on PostgreSQL), so two Reserve calls, even
from two processes on the same database, see each other's effect; and the stock table's
CHECK (reserved <= on_hand) makes an oversell impossible to commit even if a code path
forgot to check.

Expiry is applied lazily at the start of every operation (so no caller ever sees an
expired reservation still holding stock) and by the service's periodic sweeper (so
abandoned stock returns even when nobody touches the inventory).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from services.inventory.domain import (
    Line,
    Reservation,
    ReservationState,
    Shortage,
    StockLevel,
    commit_needs_work,
    out_of_stock,
    release_needs_work,
)
from services.kit.db import Connection, Database
from services.kit.errors import DomainError, NotFound
from services.kit.events import CONSUMER_MIGRATION

DB_FILE = "inventory.sqlite3"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE stock (
        product_id TEXT PRIMARY KEY,
        on_hand    INTEGER NOT NULL CHECK (on_hand >= 0),
        reserved   INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        CHECK (reserved <= on_hand)
    );
    CREATE TABLE reservations (
        order_id      TEXT PRIMARY KEY,
        state         TEXT NOT NULL
                      CHECK (state IN ('RESERVED', 'COMMITTED', 'RELEASED', 'EXPIRED')),
        expires_at_ms INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    -- Only RESERVED rows can expire; the partial index keeps the per-call check cheap.
    CREATE INDEX reservations_due ON reservations (expires_at_ms) WHERE state = 'RESERVED';
    CREATE TABLE reservation_lines (
        order_id   TEXT NOT NULL REFERENCES reservations (order_id),
        line_no    INTEGER NOT NULL,
        product_id TEXT NOT NULL REFERENCES stock (product_id),
        quantity   INTEGER NOT NULL CHECK (quantity > 0),
        PRIMARY KEY (order_id, line_no)
    );
    CREATE INDEX reservation_lines_by_product ON reservation_lines (product_id);
    """,
    # Dedupe record of the order.OrderCancelled consumer (services/inventory/events.py).
    CONSUMER_MIGRATION,
)

# Stock held by reservations that are due: RESERVED with a deadline at or before :now.
_DUE_LINES = """
    SELECT l.product_id, l.quantity FROM reservation_lines AS l
    JOIN reservations AS r ON r.order_id = l.order_id
    WHERE r.state = 'RESERVED' AND r.expires_at_ms <= :now
"""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class StockLedger:
    def __init__(self, db: Database, *, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.db = db
        self._clock_ms = clock_ms

    def seed(self, opening_stock: Mapping[str, int]) -> int:
        """Add stock rows for products that have none; returns how many were added."""
        with self.db.transaction() as conn:
            return conn.executemany(
                "INSERT INTO stock (product_id, on_hand) VALUES (?, ?)"
                " ON CONFLICT (product_id) DO NOTHING",
                opening_stock.items(),
            ).rowcount

    def reserve(self, order_id: str, lines: Sequence[Line], ttl_seconds: int) -> Reservation:
        """Hold every line for order_id, all or nothing; a repeat returns the existing one."""

        def hold(conn: Connection, now: int) -> Reservation:
            existing = self._load(conn, order_id)
            if existing is not None:
                return existing
            shortages = self._shortages(conn, lines)
            if shortages:
                raise out_of_stock(shortages)
            expires_at_ms = now + ttl_seconds * 1000
            conn.execute(
                "INSERT INTO reservations (order_id, state, expires_at_ms, created_at_ms,"
                " updated_at_ms) VALUES (?, 'RESERVED', ?, ?, ?)",
                (order_id, expires_at_ms, now, now),
            )
            conn.executemany(
                "INSERT INTO reservation_lines (order_id, line_no, product_id, quantity)"
                " VALUES (?, ?, ?, ?)",
                [(order_id, n, line.product_id, line.quantity) for n, line in enumerate(lines)],
            )
            conn.executemany(
                "UPDATE stock SET reserved = reserved + ? WHERE product_id = ?",
                [(line.quantity, line.product_id) for line in lines],
            )
            return Reservation(order_id, ReservationState.RESERVED, expires_at_ms, tuple(lines))

        return self._write(hold)

    def commit(self, order_id: str) -> Reservation:
        """Sell the reserved stock: it stops being reserved and leaves on_hand for good."""

        def sell(conn: Connection, now: int) -> Reservation:
            reservation = self._load_or_raise(conn, order_id)
            if not commit_needs_work(reservation):
                return reservation
            conn.executemany(
                "UPDATE stock SET reserved = reserved - ?, on_hand = on_hand - ?"
                " WHERE product_id = ?",
                [(ln.quantity, ln.quantity, ln.product_id) for ln in reservation.lines],
            )
            return self._set_state(conn, reservation, ReservationState.COMMITTED, now)

        return self._write(sell)

    def release(self, order_id: str) -> Reservation:
        """Give the reserved stock back to the shelf."""

        def give_back(conn: Connection, now: int) -> Reservation:
            reservation = self._load_or_raise(conn, order_id)
            if not release_needs_work(reservation):
                return reservation
            conn.executemany(
                "UPDATE stock SET reserved = reserved - ? WHERE product_id = ?",
                [(ln.quantity, ln.product_id) for ln in reservation.lines],
            )
            return self._set_state(conn, reservation, ReservationState.RELEASED, now)

        return self._write(give_back)

    def release_for_cancelled_order(
        self, conn: Connection, order_id: str
    ) -> ReservationState | None:
        """Give back what a cancelled order still holds, on the caller's transaction.

        The backstop of the saga's own Release (which may have failed while inventory was
        unreachable): a RESERVED reservation is released; any other state is left as it
        is, so applying it again, or after the saga, changes nothing. Returns the state
        the reservation ends in (None: the order never reserved anything).
        """
        now = self._clock_ms()
        self._expire_due(conn, now)
        reservation = self._load(conn, order_id)
        if reservation is None:
            return None
        if reservation.state is not ReservationState.RESERVED:
            return reservation.state
        conn.executemany(
            "UPDATE stock SET reserved = reserved - ? WHERE product_id = ?",
            [(ln.quantity, ln.product_id) for ln in reservation.lines],
        )
        return self._set_state(conn, reservation, ReservationState.RELEASED, now).state

    def get_stock(self, product_ids: Sequence[str]) -> list[StockLevel]:
        """Stock of each id in order; ids without a stock row read as 0 available."""
        self.expire_due()
        unique = list(dict.fromkeys(product_ids))
        placeholders = ", ".join("?" * len(unique))
        rows = self.db.read().execute(
            "SELECT product_id, on_hand - reserved AS available, reserved FROM stock"
            f" WHERE product_id IN ({placeholders})",
            unique,
        )
        levels = {row["product_id"]: StockLevel(*row) for row in rows}
        return [levels.get(pid, StockLevel(pid, available=0, reserved=0)) for pid in product_ids]

    def expire_due(self) -> int:
        """Expire every RESERVED reservation past its deadline; returns how many."""
        now = self._clock_ms()
        # Most calls find nothing due: check with a plain read before taking the write lock.
        due = (
            self.db.read()
            .execute(
                "SELECT 1 FROM reservations WHERE state = 'RESERVED' AND expires_at_ms <= ?"
                " LIMIT 1",
                (now,),
            )
            .fetchone()
        )
        if due is None:
            return 0
        with self.db.transaction() as conn:
            return self._expire_due(conn, now)

    def _write(self, operation: Callable[[Connection, int], Reservation]) -> Reservation:
        """Run ``operation`` under the write lock, after expiring what is due.

        A DomainError from the operation (refusals are raised before it writes anything)
        is re-raised after COMMIT rather than rolling back, so the expiries applied
        here persist even when the request itself is refused.
        """
        now = self._clock_ms()
        refused: DomainError
        with self.db.transaction() as conn:
            self._expire_due(conn, now)
            try:
                return operation(conn, now)
            except DomainError as error:
                refused = error
        raise refused

    def _load_or_raise(self, conn: Connection, order_id: str) -> Reservation:
        reservation = self._load(conn, order_id)
        if reservation is None:
            raise NotFound(f"no reservation for order {order_id}")
        return reservation

    def _set_state(
        self,
        conn: Connection,
        reservation: Reservation,
        state: ReservationState,
        now: int,
    ) -> Reservation:
        conn.execute(
            "UPDATE reservations SET state = ?, updated_at_ms = ? WHERE order_id = ?",
            (state.value, now, reservation.order_id),
        )
        return replace(reservation, state=state)

    def _shortages(self, conn: Connection, lines: Sequence[Line]) -> list[Shortage]:
        """The lines stock cannot cover; NotFound for a product without a stock row."""
        shortages: list[Shortage] = []
        for line in lines:
            row = conn.execute(
                "SELECT on_hand - reserved AS available FROM stock WHERE product_id = ?",
                (line.product_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"product {line.product_id} is not stocked by the inventory")
            if row["available"] < line.quantity:
                shortages.append(Shortage(line.product_id, line.quantity, row["available"]))
        return shortages

    def _expire_due(self, conn: Connection, now: int) -> int:
        conn.execute(
            f"""
            UPDATE stock SET reserved = reserved - (
                SELECT sum(due.quantity) FROM ({_DUE_LINES}) AS due
                WHERE due.product_id = stock.product_id
            )
            WHERE product_id IN (SELECT product_id FROM ({_DUE_LINES}) AS due_now)
            """,
            {"now": now},
        )
        return conn.execute(
            "UPDATE reservations SET state = 'EXPIRED', updated_at_ms = :now"
            " WHERE state = 'RESERVED' AND expires_at_ms <= :now",
            {"now": now},
        ).rowcount

    def _load(self, conn: Connection, order_id: str) -> Reservation | None:
        row = conn.execute(
            "SELECT state, expires_at_ms FROM reservations WHERE order_id = ?", (order_id,)
        ).fetchone()
        if row is None:
            return None
        lines = conn.execute(
            "SELECT product_id, quantity FROM reservation_lines WHERE order_id = ?"
            " ORDER BY line_no",
            (order_id,),
        )
        return Reservation(
            order_id=order_id,
            state=ReservationState(row["state"]),
            expires_at_ms=row["expires_at_ms"],
            lines=tuple(Line(r["product_id"], r["quantity"]) for r in lines),
        )
