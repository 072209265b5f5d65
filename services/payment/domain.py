"""Charging and refunding: the payment service's rules, free of gRPC, and the simulated
card network they authorise against.

meshmart has no real acquirer. Outcomes come from a fixed test-card table (the same
idea as Stripe's test numbers), so every outcome is reproducible from a test or a demo:

| number           | outcome                                               |
|------------------|-------------------------------------------------------|
| 4242424242424242 | CAPTURED                                              |
| 4000000000000002 | DECLINED, decline_reason "card_declined"              |
| 4000000000009995 | DECLINED, decline_reason "insufficient_funds"         |
| any other number | CAPTURED if it passes the Luhn check, else            |
|                  | INVALID_ARGUMENT on "card.number" (no payment stored) |

A card whose expiry month is already over is INVALID_ARGUMENT on "card.exp_year" (or
"card.exp_month" within the current year) rather than a decline: the request is
malformed and the network never sees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from services.kit.errors import InvalidArgument

from .model import Card, CardOutcome, ChargeCommand, Payment, PaymentPage, PaymentStatus
from .store import PaymentStore


class CardNetwork(Protocol):
    """Whoever authorises a card; `authorize` below (the test-card table) in meshmart."""

    def __call__(self, card: Card) -> CardOutcome: ...


class PaymentProcessor:
    """Charges and refunds: sync code, run in the database's thread (``db.run``)."""

    def __init__(
        self,
        store: PaymentStore,
        network: CardNetwork,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.db = store.db
        self._store = store
        self._network = network
        self._clock = clock

    def charge(self, command: ChargeCommand, card: Card) -> Payment:
        """Charge once per idempotency key; a decline is a DECLINED payment, not an error.

        A repeated key returns the stored payment as it is now (e.g. REFUNDED by then)
        without looking at the card or asking the network again: a retry months later,
        after the card expired, still gets its payment. The card is validated and the
        network asked inside the store's write transaction, so of two racing requests
        with one key exactly one reaches the network.
        """
        now = self._clock()

        def authorize() -> tuple[PaymentStatus, str]:
            validate_card(card, now.date())
            outcome = self._network(card)
            if outcome.captured:
                return PaymentStatus.CAPTURED, ""
            return PaymentStatus.DECLINED, outcome.decline_reason

        return self._store.record_charge(
            command, authorize=authorize, card_last4=card.last4, now=now
        )

    def refund(self, payment_id: str, idempotency_key: str, reason: str) -> Payment:
        return self._store.record_refund(payment_id, idempotency_key, reason, self._clock())

    def list_for_user(self, user_id: str, page_size: int, page_token: str) -> PaymentPage:
        return self._store.list_for_user(user_id, page_size, page_token)


# --------------------------------------------------------------- the simulated network

DECLINED_CARDS: dict[str, str] = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
}
"""Test numbers the network declines, with the decline reason it reports."""


def luhn_valid(number: str) -> bool:
    """The mod-10 checksum every payment card number carries."""
    if not number.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def validate_card(card: Card, today: dt.date) -> None:
    """Raise InvalidArgument naming the first bad card field; `today` is the UTC date."""
    number = card.number
    if not number:
        raise InvalidArgument(field="card.number", description="is required")
    if not number.isdigit() or not 12 <= len(number) <= 19:
        raise InvalidArgument(field="card.number", description="must be 12 to 19 digits")
    if not luhn_valid(number):
        raise InvalidArgument(field="card.number", description="fails the Luhn check")
    if not 1 <= card.exp_month <= 12:
        raise InvalidArgument(field="card.exp_month", description="must be between 1 and 12")
    if not 1000 <= card.exp_year <= 9999:
        raise InvalidArgument(field="card.exp_year", description="must be a four-digit year")
    # A card is valid through the last day of its expiry month.
    if card.exp_year < today.year:
        raise InvalidArgument(field="card.exp_year", description="card has expired")
    if card.exp_year == today.year and card.exp_month < today.month:
        raise InvalidArgument(field="card.exp_month", description="card has expired")
    if not (card.cvc.isdigit() and len(card.cvc) in (3, 4)):
        raise InvalidArgument(field="card.cvc", description="must be 3 or 4 digits")


def authorize(card: Card) -> CardOutcome:
    """What the simulated network answers for a valid card."""
    reason = DECLINED_CARDS.get(card.number)
    if reason is not None:
        return CardOutcome(captured=False, decline_reason=reason)
    return CardOutcome(captured=True)
