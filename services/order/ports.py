"""What the PlaceOrderSaga needs from user, cart, inventory and payment, in its own words.

The saga is plain Python against these protocols; upstreams.py implements them over gRPC
(stubs injected by app.py, each adapter with its deadline per call).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .model import Card, Contact, Money, PaymentState


class FailureKind(enum.Enum):
    # Unavailable or timed out: the call may or may not have taken effect.
    UNREACHABLE = "unreachable"
    # The upstream said no (FAILED_PRECONDITION): nothing was changed.
    REFUSED = "refused"
    # The thing asked about does not exist (NOT_FOUND).
    NOT_FOUND = "not_found"
    # The upstream rejected the request itself (INVALID_ARGUMENT and the like).
    INVALID = "invalid"


class UpstreamError(Exception):
    """A remote call failed; ``kind`` is what the saga decides on, ``detail`` is for people."""

    def __init__(self, service: str, kind: FailureKind, detail: str, *, subject: str = "") -> None:
        super().__init__(f"{service}: {kind.value}: {detail}")
        self.service = service
        self.kind = kind
        self.detail = detail
        # What the failure is about, when the upstream named it (e.g. the product that is
        # out of stock).
        self.subject = subject


@dataclass(frozen=True)
class CartLine:
    product_id: str
    name: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True)
class StockLine:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class ChargeOutcome:
    payment_id: str
    state: PaymentState
    decline_reason: str = ""


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    order_id: str
    user_id: str
    amount: Money
    card: Card


class Users(Protocol):
    async def contact(self, user_id: str) -> Contact:
        """The user's contact data; UpstreamError NOT_FOUND for an unknown user."""
        ...


class Carts(Protocol):
    async def lines(self, user_id: str) -> list[CartLine]: ...

    async def clear(self, user_id: str) -> None: ...


class Inventory(Protocol):
    async def reserve(self, order_id: str, lines: Sequence[StockLine], *, ttl_seconds: int) -> None:
        """All or nothing; REFUSED with ``subject`` = the product short of stock."""
        ...

    async def release(self, order_id: str) -> None:
        """NOT_FOUND when nothing was reserved; REFUSED when the stock is already sold."""
        ...

    async def commit(self, order_id: str) -> None:
        """REFUSED when the reservation was released or expired."""
        ...


class Payments(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        """CAPTURED or DECLINED (a decline is an outcome, not an error)."""
        ...

    async def refund(self, payment_id: str, idempotency_key: str, reason: str) -> None: ...

    async def find_charge(self, user_id: str, order_id: str) -> ChargeOutcome | None:
        """The payment made for ``order_id``, if payment has one (how recovery learns
        whether a charge whose answer was lost went through)."""
        ...
