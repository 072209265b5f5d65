"""SQLite storage of payments and refunds.

Idempotency is enforced by the database, not by the process: `idempotency_key` is
UNIQUE in both tables and every write runs inside BEGIN IMMEDIATE, so the
look-up-then-insert of a Charge is serialised across threads and across processes
sharing the file (two payment instances on one data dir). The losing racer waits
for the write lock, then finds the winner's row and returns it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable

from services.kit.clock import from_us, to_us
from services.kit.db import Connection, Database, Row, Synchronous, from_row
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.outbox import OUTBOX_MIGRATION, Outbox

from .events import payment_captured, payment_refunded
from .model import ChargeCommand, Payment, PaymentPage, PaymentStatus

SCHEMA_V1 = """
CREATE TABLE payments (
    payment_id      TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    order_id        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('CAPTURED', 'DECLINED', 'REFUNDED')),
    decline_reason  TEXT NOT NULL DEFAULT '',
    card_last4      TEXT NOT NULL CHECK (length(card_last4) = 4),
    created_us      INTEGER NOT NULL,
    updated_us      INTEGER NOT NULL
);
-- ListPayments walks a user's payments newest first by (created_us, payment_id).
CREATE INDEX payments_by_user ON payments (user_id, created_us DESC, payment_id DESC);

-- One refund per payment (full refunds only); its key makes Refund idempotent.
CREATE TABLE refunds (
    refund_id       TEXT PRIMARY KEY,
    payment_id      TEXT NOT NULL UNIQUE REFERENCES payments (payment_id),
    idempotency_key TEXT NOT NULL UNIQUE,
    reason          TEXT NOT NULL,
    created_us      INTEGER NOT NULL
);
"""

# PaymentCaptured/PaymentRefunded leave through the transactional outbox (both payment
# instances share the file; the relays' lease keeps one publishing at a time).
MIGRATIONS = [SCHEMA_V1, OUTBOX_MIGRATION]

# A captured charge is money taken: once Charge has answered, the commit behind it must
# survive a power loss too (an fsync per commit), or a retry would charge the card again.
SYNCHRONOUS: Synchronous = "FULL"

_PAYMENT_COLUMNS = """
    p.payment_id, p.idempotency_key, p.order_id, p.user_id, p.amount_minor, p.currency,
    p.status, p.decline_reason, p.card_last4, p.created_us, p.updated_us,
    coalesce(r.reason, '') AS refund_reason
"""
_PAYMENT_FROM = "payments p LEFT JOIN refunds r ON r.payment_id = p.payment_id"


def _row_to_payment(row: Row) -> Payment:
    return from_row(
        Payment,
        row,
        status=PaymentStatus(row["status"]),
        created_at=from_us(row["created_us"]),
        updated_at=from_us(row["updated_us"]),
    )


def _encode_page_token(created_us: int, payment_id: str) -> str:
    raw = f"{created_us}:{payment_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created, payment_id = raw.split(":", 1)
        return int(created), payment_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(
            field="page_token", description="is not a token from a previous response"
        ) from None


class PaymentStore:
    def __init__(
        self, db: Database, new_id: Callable[[str], str], outbox: Outbox | None = None
    ) -> None:
        self.db = db
        # Ids are injected so that tests can make them predictable.
        self._new_id = new_id
        self.outbox = outbox or Outbox("payment")

    def find_by_key(self, idempotency_key: str) -> Payment | None:
        conn = self.db.read()
        return self._find_by_key(conn, idempotency_key)

    def get(self, payment_id: str) -> Payment:
        conn = self.db.read()
        payment = self._get(conn, payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id!r} not found")
        return payment

    def record_charge(
        self,
        command: ChargeCommand,
        *,
        authorize: Callable[[], tuple[PaymentStatus, str]],
        card_last4: str,
        now: dt.datetime,
    ) -> Payment:
        """Return the payment stored for the command's key, or authorize and store a new one.

        `authorize` (status, decline reason) runs under the write lock and only when the
        key is new, so a key is authorized at most once however many requests race.
        """
        with self.db.transaction() as conn:
            existing = self._find_by_key(conn, command.idempotency_key)
            if existing is not None:
                _ensure_same_charge(existing, command)
                return existing
            status, decline_reason = authorize()
            payment_id = self._new_id("pay")
            stamp = to_us(now)
            conn.execute(
                "INSERT INTO payments (payment_id, idempotency_key, order_id, user_id,"
                " amount_minor, currency, status, decline_reason, card_last4,"
                " created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    payment_id,
                    command.idempotency_key,
                    command.order_id,
                    command.user_id,
                    command.amount_minor,
                    command.currency,
                    status.value,
                    decline_reason,
                    card_last4,
                    stamp,
                    stamp,
                ),
            )
            created = self._get(conn, payment_id)
            assert created is not None  # inserted just above in the same transaction
            if created.status is PaymentStatus.CAPTURED:
                payment_captured(self.outbox, conn, created)
        return created

    def record_refund(
        self, payment_id: str, idempotency_key: str, reason: str, now: dt.datetime
    ) -> Payment:
        with self.db.transaction() as conn:
            previous = conn.execute(
                "SELECT payment_id FROM refunds WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if previous is not None:
                if previous["payment_id"] != payment_id:
                    raise FailedPrecondition(
                        f"idempotency_key {idempotency_key!r} was already used to refund"
                        f" payment {previous['payment_id']!r}"
                    )
                refunded = self._get(conn, payment_id)
                assert refunded is not None  # refunds reference their payment
                return refunded
            payment = self._get(conn, payment_id)
            if payment is None:
                raise NotFound(f"payment {payment_id!r} not found")
            if payment.status is not PaymentStatus.CAPTURED:
                raise FailedPrecondition(
                    f"payment {payment_id!r} is {payment.status.value};"
                    " only CAPTURED payments can be refunded"
                )
            stamp = to_us(now)
            conn.execute(
                "INSERT INTO refunds (refund_id, payment_id, idempotency_key, reason, created_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (self._new_id("ref"), payment_id, idempotency_key, reason, stamp),
            )
            conn.execute(
                "UPDATE payments SET status = ?, updated_us = ? WHERE payment_id = ?",
                (PaymentStatus.REFUNDED.value, stamp, payment_id),
            )
            refunded = self._get(conn, payment_id)
            assert refunded is not None
            payment_refunded(self.outbox, conn, refunded)
        return refunded

    def list_for_user(self, user_id: str, page_size: int, page_token: str) -> PaymentPage:
        conn = self.db.read()
        params: list[object] = [user_id]
        after = ""
        if page_token:
            created_us, payment_id = _decode_page_token(page_token)
            after = " AND (p.created_us, p.payment_id) < (?, ?)"
            params += [created_us, payment_id]
        # One extra row tells whether another page exists without a COUNT.
        params.append(page_size + 1)
        rows = conn.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM {_PAYMENT_FROM} WHERE p.user_id = ?{after}"
            " ORDER BY p.created_us DESC, p.payment_id DESC LIMIT ?",
            params,
        ).fetchall()
        payments = [_row_to_payment(row) for row in rows[:page_size]]
        next_token = ""
        if len(rows) > page_size:
            last = rows[page_size - 1]
            next_token = _encode_page_token(last["created_us"], last["payment_id"])
        return PaymentPage(payments=payments, next_page_token=next_token)

    @staticmethod
    def _find_by_key(conn: Connection, idempotency_key: str) -> Payment | None:
        row = conn.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM {_PAYMENT_FROM} WHERE p.idempotency_key = ?",
            (idempotency_key,),
        ).fetchone()
        return None if row is None else _row_to_payment(row)

    @staticmethod
    def _get(conn: Connection, payment_id: str) -> Payment | None:
        row = conn.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM {_PAYMENT_FROM} WHERE p.payment_id = ?",
            (payment_id,),
        ).fetchone()
        return None if row is None else _row_to_payment(row)


def _ensure_same_charge(existing: Payment, command: ChargeCommand) -> None:
    """A reused key must describe the same charge; anything else is a client bug.

    FAILED_PRECONDITION (not INVALID_ARGUMENT): the request is well-formed on its own,
    it conflicts with state the key already names. Card details are not compared (only
    the last four digits are stored); a retry with another card gets the first outcome.
    """
    mismatched = [
        name
        for name, stored, asked in (
            ("order_id", existing.order_id, command.order_id),
            ("user_id", existing.user_id, command.user_id),
            ("amount.amount_minor", existing.amount_minor, command.amount_minor),
            ("amount.currency", existing.currency, command.currency),
        )
        if stored != asked
    ]
    if mismatched:
        raise FailedPrecondition(
            f"idempotency_key {command.idempotency_key!r} was already used for a different"
            f" charge (differs in {', '.join(mismatched)})"
        )
