"""Payment records as the payment service's own code sees them (no protobuf here)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass


class PaymentStatus(enum.StrEnum):
    CAPTURED = "CAPTURED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"


@dataclass(frozen=True)
class Payment:
    payment_id: str
    idempotency_key: str
    order_id: str
    user_id: str
    amount_minor: int
    currency: str
    status: PaymentStatus
    decline_reason: str
    # Only the last four digits ever reach storage or logs (PCI scope stays at zero).
    card_last4: str
    created_at: dt.datetime
    updated_at: dt.datetime
    refund_reason: str = ""


@dataclass(frozen=True)
class ChargeCommand:
    """A validated Charge: what must match when an idempotency key is reused."""

    idempotency_key: str
    order_id: str
    user_id: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class PaymentPage:
    payments: list[Payment]
    next_page_token: str


@dataclass(frozen=True)
class Card:
    number: str
    exp_month: int
    exp_year: int
    cvc: str

    @property
    def last4(self) -> str:
        return self.number[-4:]


@dataclass(frozen=True)
class CardOutcome:
    captured: bool
    decline_reason: str = ""


def new_id(prefix: str) -> str:
    """A fresh opaque id such as "pay-3f0c...": unguessable, so ids leak nothing."""
    return f"{prefix}-{uuid.uuid4().hex}"
