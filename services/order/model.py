"""Orders as the order service's own code sees them (no protobuf here)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class OrderState(enum.StrEnum):
    """What the customer sees: PENDING while the saga runs, then one final state."""

    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


class SagaStep(enum.StrEnum):
    """How far the PlaceOrder saga got; stored after every step so a restart can resume.

    Each value names the remote call that may be in flight (or may have landed without
    our hearing the answer) while the order sits at that step. Recovery reads it as
    "this is the first thing whose outcome I do not know".
    """

    # The order row exists; inventory.Reserve may have been sent.
    RESERVING = "reserving"
    # Stock is reserved; payment.Charge may have been sent.
    CHARGING = "charging"
    # The payment is captured; inventory.Commit may have been sent.
    COMMITTING = "committing"
    # The order is CANCELLED; releasing stock and refunding may still be owed.
    COMPENSATING = "compensating"
    # Nothing left to do: CONFIRMED, or CANCELLED with every step compensated.
    DONE = "done"


class PaymentState(enum.StrEnum):
    """What order knows about the order's one charge (idempotency key "<order_id>:charge")."""

    NONE = "none"  # no charge sent
    UNKNOWN = "unknown"  # a charge was sent and no answer came back
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"


@dataclass(frozen=True)
class Money:
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    # Name and price are copied from the cart, so the order shows what was bought even if
    # the catalog changes later.
    name: str
    quantity: int
    unit_price_minor: int

    @property
    def line_total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str


@dataclass(frozen=True)
class Card:
    """Card data, held in memory for the one Charge call and never stored or logged."""

    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str = field(repr=False)

    @property
    def last4(self) -> str:
        return self.number[-4:]


@dataclass(frozen=True)
class Contact:
    """The local copy of a user's contact data (kept so order can ship and mail alone)."""

    user_id: str
    email: str
    full_name: str
    phone: str
    # When the user last changed the profile (user's updated_at): a copy never goes back
    # to older data, whichever of GetUser and the UserUpdated events brings it last.
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    idempotency_key: str
    state: OrderState
    step: SagaStep
    lines: tuple[OrderLine, ...]
    currency: str
    shipping_address: Address
    created_at: dt.datetime
    updated_at: dt.datetime
    payment_id: str = ""
    payment_state: PaymentState = PaymentState.NONE
    cancel_reason: str = ""

    @property
    def total(self) -> Money:
        return Money(sum(line.line_total_minor for line in self.lines), self.currency)

    @property
    def is_settled(self) -> bool:
        """True when the saga owes nothing more (the order may still be CANCELLED)."""
        return self.step is SagaStep.DONE


@dataclass(frozen=True)
class PlaceOrderCommand:
    """A validated PlaceOrder request."""

    user_id: str
    idempotency_key: str
    card: Card
    shipping_address: Address


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_page_token: str
