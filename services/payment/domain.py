"""Charging and refunding: the payment service's rules, free of gRPC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from .cards import Card, CardOutcome, validate_card
from .model import ChargeCommand, Payment, PaymentPage, PaymentStatus
from .store import PaymentStore


class CardNetwork(Protocol):
    """Whoever authorises a card; `cards.authorize` (the test-card table) in meshmart."""

    def __call__(self, card: Card) -> CardOutcome: ...


class PaymentProcessor:
    def __init__(
        self,
        store: PaymentStore,
        network: CardNetwork,
        clock: Callable[[], dt.datetime],
    ) -> None:
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
