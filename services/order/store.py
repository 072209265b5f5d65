"""SQLite storage of orders, their lines, the saga's progress and users' contact data.

The saga writes its progress here after every step (``step``, ``payment_id``,
``payment_state``), so whatever happens to the process, the next start knows what may
have been done remotely and can finish or undo it. Idempotency of PlaceOrder is the
database's job: (user_id, idempotency_key) is UNIQUE and inserts run inside
BEGIN IMMEDIATE, so of two racing requests exactly one creates the order.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable
from typing import Protocol

from services.kit.clock import from_us, to_us
from services.kit.db import Connection, Database, Row, Synchronous, from_row
from services.kit.errors import InvalidArgument
from services.kit.events import CONSUMER_MIGRATION
from services.kit.outbox import OUTBOX_MIGRATION

from .model import (
    Address,
    Contact,
    Order,
    OrderLine,
    OrderPage,
    OrderState,
    PaymentState,
    SagaStep,
)

SCHEMA_V1 = """
CREATE TABLE orders (
    -- Insertion order: "newest first" pages walk it backwards, ties impossible.
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id         TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    step             TEXT NOT NULL CHECK (
                         step IN ('reserving', 'charging', 'committing', 'compensating', 'done')),
    currency         TEXT NOT NULL,
    total_minor      INTEGER NOT NULL CHECK (total_minor > 0),
    payment_id       TEXT NOT NULL DEFAULT '',
    payment_state    TEXT NOT NULL DEFAULT 'none' CHECK (
                         payment_state IN ('none', 'unknown', 'captured', 'declined', 'refunded')),
    cancel_reason    TEXT NOT NULL DEFAULT '',
    shipping_address TEXT NOT NULL,  -- JSON object of model.Address
    created_us       INTEGER NOT NULL,
    updated_us       INTEGER NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX orders_by_user ON orders (user_id, seq DESC);
-- Recovery reads every order the saga still owes work on; few at any time.
CREATE INDEX orders_unsettled ON orders (step) WHERE step <> 'done';

CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (order_id),
    line_no          INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    name             TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- The local copy of user contact data: order can still ship (and later mail) when user
-- is down, and GetUser failing does not block an order of a user seen before.
CREATE TABLE contacts (
    user_id          TEXT PRIMARY KEY,
    email            TEXT NOT NULL,
    full_name        TEXT NOT NULL,
    phone            TEXT NOT NULL,
    refreshed_us     INTEGER NOT NULL
);
"""

# Events: the outbox (OrderPlaced/Confirmed/Cancelled leave with the state change), the
# consumer's dedupe table (UserUpdated), and the version of each contact copy (the user's
# updated_at, so a late or redelivered older event never overwrites newer data).
SCHEMA_V2 = f"""
{OUTBOX_MIGRATION}
{CONSUMER_MIGRATION}
ALTER TABLE contacts ADD COLUMN version_us INTEGER NOT NULL DEFAULT 0;
"""

MIGRATIONS = [SCHEMA_V1, SCHEMA_V2]

# An acknowledged order (and its saga's progress: payment captured, stock committed) must
# survive a power loss too (an fsync per commit): recovery resumes from what is on disk.
SYNCHRONOUS: Synchronous = "FULL"

TOKEN_VERSION = 1
PAGE_TOKEN_FIELD = "page_token"


class StaleOrder(Exception):
    """The order changed since it was read (someone else advanced the saga)."""


def _address_json(address: Address) -> str:
    return json.dumps(
        {
            "name": address.name,
            "line1": address.line1,
            "line2": address.line2,
            "city": address.city,
            "postal_code": address.postal_code,
            "country": address.country,
        },
        separators=(",", ":"),
    )


def _address_from_json(raw: str) -> Address:
    return from_row(Address, json.loads(raw))


def _encode_token(scope: str, before_seq: int) -> str:
    raw = json.dumps({"v": TOKEN_VERSION, "s": scope, "b": before_seq}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")


def _decode_token(token: str, scope: str) -> int | None:
    """The seq the page starts below, or None for the first page.

    The token carries the listing it belongs to ("user:<id>" or "all"), so a token of one
    listing used for another is INVALID_ARGUMENT rather than a page that makes no sense.
    """
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidArgument(PAGE_TOKEN_FIELD, "is not a page token issued by this RPC") from None
    before = body.get("b") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or body.get("v") != TOKEN_VERSION
        or body.get("s") != scope
        or not isinstance(before, int)
        or isinstance(before, bool)
    ):
        raise InvalidArgument(PAGE_TOKEN_FIELD, "is not a page token issued by this RPC")
    return before


class OrderEventSink(Protocol):
    """Writes the events of order changes into the outbox (services/order/events.py).

    Called inside the store's transaction, so an event exists exactly when its change does.
    """

    def order_created(
        self, conn: Connection, order: Order, customer: Contact | None
    ) -> None: ...

    def order_state_changed(
        self, conn: Connection, order: Order, customer: Contact | None
    ) -> None: ...


class OrderStore:
    def __init__(self, db: Database, events: OrderEventSink | None = None) -> None:
        self.db = db
        self._events = events

    # -- orders ---------------------------------------------------------------------

    def create(
        self, order: Order, contact: Contact | None = None, now: dt.datetime | None = None
    ) -> tuple[Order, bool]:
        """Insert ``order``; if the user already has an order with this idempotency key,
        return that one instead. The flag says whether ``order`` was created. ``contact``
        (the user's data as just read, at ``now``) refreshes the local copy in the same
        transaction, whichever order is returned."""
        with self.db.transaction() as conn:
            if contact is not None:
                self.upsert_contact(conn, contact, now or order.created_at)
            existing = self._find_by_key(conn, order.user_id, order.idempotency_key)
            if existing is not None:
                return existing, False
            conn.execute(
                """
                INSERT INTO orders (order_id, user_id, idempotency_key, state, step, currency,
                    total_minor, payment_id, payment_state, cancel_reason, shipping_address,
                    created_us, updated_us)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    order.order_id,
                    order.user_id,
                    order.idempotency_key,
                    order.state.value,
                    order.step.value,
                    order.currency,
                    order.total.amount_minor,
                    order.payment_id,
                    order.payment_state.value,
                    order.cancel_reason,
                    _address_json(order.shipping_address),
                    to_us(order.created_at),
                    to_us(order.updated_at),
                ),
            )
            conn.executemany(
                """
                INSERT INTO order_lines (order_id, line_no, product_id, name, quantity,
                    unit_price_minor)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                [
                    (
                        order.order_id,
                        line_no,
                        line.product_id,
                        line.name,
                        line.quantity,
                        line.unit_price_minor,
                    )
                    for line_no, line in enumerate(order.lines)
                ],
            )
            if self._events is not None:
                self._events.order_created(conn, order, self._contact(conn, order.user_id))
        return order, True

    def save_progress(self, order: Order, *, expected_step: SagaStep) -> Order:
        """Persist the saga's progress on ``order`` (state, step, payment, reason).

        Only if the stored step is still ``expected_step``: a second driver of the same
        order (a racing recovery) loses with StaleOrder instead of overwriting.
        """
        with self.db.transaction() as conn:
            before = conn.execute(
                "SELECT state FROM orders WHERE order_id = ?", (order.order_id,)
            ).fetchone()
            cursor = conn.execute(
                """
                UPDATE orders
                   SET state = ?, step = ?, payment_id = ?, payment_state = ?,
                       cancel_reason = ?, updated_us = ?
                 WHERE order_id = ? AND step = ?
                """,
                (
                    order.state.value,
                    order.step.value,
                    order.payment_id,
                    order.payment_state.value,
                    order.cancel_reason,
                    to_us(order.updated_at),
                    order.order_id,
                    expected_step.value,
                ),
            )
            if cursor.rowcount != 1:
                raise StaleOrder(f"order {order.order_id} is no longer at step {expected_step}")
            if self._events is not None and before["state"] != order.state.value:
                self._events.order_state_changed(conn, order, self._contact(conn, order.user_id))
        return order

    def get(self, order_id: str) -> Order | None:
        conn = self.db.read()
        row = conn.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
        return None if row is None else self._hydrate(conn, [row])[0]

    def find_by_key(self, user_id: str, idempotency_key: str) -> Order | None:
        return self._find_by_key(self.db.read(), user_id, idempotency_key)

    def unsettled(self) -> list[Order]:
        """Orders the saga still owes work on (not yet CONFIRMED, or compensation pending)."""
        conn = self.db.read()
        rows = conn.execute("SELECT * FROM orders WHERE step <> 'done' ORDER BY seq").fetchall()
        return self._hydrate(conn, rows)

    def list_for_user(self, user_id: str, page_size: int, page_token: str) -> OrderPage:
        return self._page(f"user:{user_id}", "user_id = ?", (user_id,), page_size, page_token)

    def list_recent(self, page_size: int, page_token: str) -> OrderPage:
        return self._page("all", "1 = 1", (), page_size, page_token)

    def _page(
        self,
        scope: str,
        where: str,
        params: tuple[object, ...],
        page_size: int,
        page_token: str,
    ) -> OrderPage:
        before = _decode_token(page_token, scope)
        conn = self.db.read()
        clause, args = where, [*params]
        if before is not None:
            clause += " AND seq < ?"
            args.append(before)
        # One row more than asked tells whether a next page exists without a COUNT.
        rows = conn.execute(
            f"SELECT * FROM orders WHERE {clause} ORDER BY seq DESC LIMIT ?",
            (*args, page_size + 1),
        ).fetchall()
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = _encode_token(scope, rows[-1]["seq"]) if more and rows else ""
        return OrderPage(orders=self._hydrate(conn, rows), next_page_token=token)

    @staticmethod
    def _find_by_key(conn: Connection, user_id: str, idempotency_key: str) -> Order | None:
        row = conn.execute(
            "SELECT * FROM orders WHERE user_id = ? AND idempotency_key = ?",
            (user_id, idempotency_key),
        ).fetchone()
        return None if row is None else OrderStore._hydrate(conn, [row])[0]

    @staticmethod
    def _hydrate(conn: Connection, rows: Iterable[Row]) -> list[Order]:
        rows = list(rows)
        if not rows:
            return []
        ids = [row["order_id"] for row in rows]
        marks = ",".join("?" * len(ids))
        lines: dict[str, list[OrderLine]] = {order_id: [] for order_id in ids}
        for line in conn.execute(
            f"SELECT * FROM order_lines WHERE order_id IN ({marks}) ORDER BY order_id, line_no",
            ids,
        ):
            lines[line["order_id"]].append(
                OrderLine(
                    product_id=line["product_id"],
                    name=line["name"],
                    quantity=line["quantity"],
                    unit_price_minor=line["unit_price_minor"],
                )
            )
        return [
            Order(
                order_id=row["order_id"],
                user_id=row["user_id"],
                idempotency_key=row["idempotency_key"],
                state=OrderState(row["state"]),
                step=SagaStep(row["step"]),
                lines=tuple(lines[row["order_id"]]),
                currency=row["currency"],
                shipping_address=_address_from_json(row["shipping_address"]),
                created_at=from_us(row["created_us"]),
                updated_at=from_us(row["updated_us"]),
                payment_id=row["payment_id"],
                payment_state=PaymentState(row["payment_state"]),
                cancel_reason=row["cancel_reason"],
            )
            for row in rows
        ]

    # -- contacts -------------------------------------------------------------------

    @staticmethod
    def upsert_contact(conn: Connection, contact: Contact, now: dt.datetime) -> bool:
        """Store ``contact`` unless the copy holds newer data; True if it was stored.

        Runs on the caller's transaction (the UserUpdated consumer's, or create's).
        """
        version = 0 if contact.updated_at is None else to_us(contact.updated_at)
        cursor = conn.execute(
            """
            INSERT INTO contacts (user_id, email, full_name, phone, refreshed_us, version_us)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (user_id) DO UPDATE SET
                email = excluded.email, full_name = excluded.full_name,
                phone = excluded.phone, refreshed_us = excluded.refreshed_us,
                version_us = excluded.version_us
            WHERE excluded.version_us >= contacts.version_us
            """,
            (
                contact.user_id,
                contact.email,
                contact.full_name,
                contact.phone,
                to_us(now),
                version,
            ),
        )
        return cursor.rowcount == 1

    def contact(self, user_id: str) -> Contact | None:
        return self._contact(self.db.read(), user_id)

    def contacts(self, user_ids: Iterable[str]) -> dict[str, Contact]:
        conn = self.db.read()
        found = {}
        for user_id in set(user_ids):
            contact = self._contact(conn, user_id)
            if contact is not None:
                found[user_id] = contact
        return found

    @staticmethod
    def _contact(conn: Connection, user_id: str) -> Contact | None:
        row = conn.execute("SELECT * FROM contacts WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return None
        return Contact(
            user_id=row["user_id"],
            email=row["email"],
            full_name=row["full_name"],
            phone=row["phone"],
            updated_at=from_us(row["version_us"]) if row["version_us"] else None,
        )
