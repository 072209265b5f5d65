"""PaymentProcessor on real SQLite with a clock the test moves."""

from __future__ import annotations

import datetime as dt

import pytest

from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.payment.domain import PaymentProcessor, authorize
from services.payment.model import Card, ChargeCommand, PaymentStatus, new_id
from services.payment.store import PaymentStore
from tests.unit.payment.harness import TODAY

CARD = Card(number="4242424242424242", exp_month=6, exp_year=2026, cvc="123")
COMMAND = ChargeCommand("order-1:charge", "order-1", "user-1", 2590, "EUR")


class MovableClock:
    def __init__(self) -> None:
        self.now = TODAY

    def __call__(self) -> dt.datetime:
        return self.now


def test_a_retry_after_the_card_expired_still_gets_its_payment(db: Database) -> None:
    clock = MovableClock()
    processor = PaymentProcessor(PaymentStore(db, new_id), authorize, clock)
    first = processor.charge(COMMAND, CARD)

    clock.now = TODAY + dt.timedelta(days=60)  # the card expired at the end of June
    replay = processor.charge(COMMAND, CARD)

    assert first.status is PaymentStatus.CAPTURED
    assert replay == first
    with pytest.raises(InvalidArgument, match="expired"):
        processor.charge(ChargeCommand("order-2:charge", "order-2", "user-1", 100, "EUR"), CARD)


def test_a_replay_reports_the_payment_as_it_is_now(db: Database) -> None:
    processor = PaymentProcessor(PaymentStore(db, new_id), authorize, MovableClock())
    first = processor.charge(COMMAND, CARD)
    processor.refund(first.payment_id, "order-1:refund", "cancelled")

    replay = processor.charge(COMMAND, CARD)

    assert replay.payment_id == first.payment_id
    assert replay.status is PaymentStatus.REFUNDED
    assert replay.refund_reason == "cancelled"
