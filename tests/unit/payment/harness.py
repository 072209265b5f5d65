"""What the payment tests share: request builders and the running-server harness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from meshmart.common.v1 import common_pb2
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc

from harness.postgres import Databases
from services.kit.db import Database
from services.payment.faults import FaultInjector

# Tests run "today" at a fixed date, so expiry checks never depend on the real calendar.
TODAY = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


class TickingClock:
    """Starts at TODAY and moves 1 ms per reading, so every payment has its own time."""

    def __init__(self, start: dt.datetime = TODAY) -> None:
        self._now = start

    def __call__(self) -> dt.datetime:
        self._now += dt.timedelta(milliseconds=1)
        return self._now


CAPTURE_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"


def card(number: str = CAPTURE_CARD, exp_month: int = 12, exp_year: int = 2030) -> payment_pb2.Card:
    return payment_pb2.Card(number=number, exp_month=exp_month, exp_year=exp_year, cvc="123")


def charge_request(
    key: str = "order-1:charge",
    *,
    order_id: str = "order-1",
    user_id: str = "user-1",
    amount_minor: int = 2590,
    currency: str = "EUR",
    number: str = CAPTURE_CARD,
) -> payment_pb2.ChargeRequest:
    return payment_pb2.ChargeRequest(
        idempotency_key=key,
        order_id=order_id,
        user_id=user_id,
        amount=common_pb2.Money(amount_minor=amount_minor, currency=currency),
        card=card(number),
    )


@dataclass
class PaymentHarness:
    stub: payment_pb2_grpc.PaymentServiceAsyncStub
    admin: payment_pb2_grpc.PaymentAdminServiceAsyncStub
    db: Database
    databases: Databases
    faults: FaultInjector

    def stored_bytes(self) -> bytes:
        """Everything the payment database holds: the SQLite files (WAL included), or
        every row of every table as PostgreSQL prints it."""
        if self.db.engine == "sqlite":
            return b"".join(p.read_bytes() for p in self.db.path.parent.glob("payment.sqlite3*"))
        tables = self.db.read().execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        return b"".join(
            str(row[0]).encode()
            for (table,) in tables.fetchall()
            for row in self.db.read().execute(f'SELECT t::text FROM "{table}" t').fetchall()
        )

    def payment_rows(self) -> list[dict[str, object]]:
        rows = self.db.read().execute("SELECT * FROM payments ORDER BY created_us").fetchall()
        return [dict(row) for row in rows]
