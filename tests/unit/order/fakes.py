"""In-memory upstreams for the saga's pure-logic tests (tests/unit/order/test_saga_logic.py).

They follow the ports' contracts (idempotent Reserve/Charge, REFUSED/NOT_FOUND meanings)
and can be told to fail or hang one operation, which real servers cannot do on cue.
The end-to-end behaviour is proven against the real services in test_order_*.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.order.model import Contact, Money, PaymentState
from services.order.ports import (
    CartLine,
    ChargeOutcome,
    ChargeRequest,
    FailureKind,
    StockLine,
    UpstreamError,
)

DECLINED = {"4000000000000002": "card_declined", "4000000000009995": "insufficient_funds"}


@dataclass
class Faults:
    """Per operation name ("reserve", "charge", ...): fail with a kind, or wait at a gate."""

    failing: dict[str, FailureKind] = field(default_factory=dict)
    # An operation with a gate waits until the gate is set (never, to play a hung call).
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    # Set when an operation has been entered, so a test knows where the saga is.
    entered: dict[str, asyncio.Event] = field(default_factory=dict)
    # Operations that take effect and *then* fail (the answer is lost).
    lose_answer: set[str] = field(default_factory=set)
    # Like gates, but passed after the operation took effect (the process can die between
    # the upstream acting and the saga hearing of it).
    gates_after: dict[str, asyncio.Event] = field(default_factory=dict)

    async def before(self, service: str, operation: str) -> None:
        self.reached(operation).set()
        gate = self.gates.get(operation)
        if gate is not None:
            await gate.wait()
        kind = self.failing.get(operation)
        if kind is not None:
            raise UpstreamError(service, kind, f"injected {kind.value} in {operation}")

    def reached(self, operation: str) -> asyncio.Event:
        return self.entered.setdefault(operation, asyncio.Event())

    async def after(self, service: str, operation: str) -> None:
        gate = self.gates_after.get(operation)
        if gate is not None:
            self.reached(f"{operation}:done").set()
            await gate.wait()
        if operation in self.lose_answer:
            raise UpstreamError(service, FailureKind.UNREACHABLE, f"{operation}: answer lost")


class FakeUsers:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.users: dict[str, Contact] = {}

    async def contact(self, user_id: str) -> Contact:
        await self.faults.before("user", "contact")
        if user_id not in self.users:
            raise UpstreamError("user", FailureKind.NOT_FOUND, f"user {user_id} not found")
        return self.users[user_id]


class FakeCarts:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.carts: dict[str, list[CartLine]] = {}

    def add(self, user_id: str, product_id: str, quantity: int, price: int) -> None:
        self.carts.setdefault(user_id, []).append(
            CartLine(product_id, f"Product {product_id}", quantity, Money(price, "EUR"))
        )

    async def lines(self, user_id: str) -> list[CartLine]:
        await self.faults.before("cart", "lines")
        return list(self.carts.get(user_id, []))

    async def clear(self, user_id: str) -> None:
        await self.faults.before("cart", "clear")
        self.carts.pop(user_id, None)


@dataclass
class Reservation:
    lines: tuple[StockLine, ...]
    state: str = "RESERVED"


class FakeInventory:
    def __init__(self, faults: Faults, stock: dict[str, int]) -> None:
        self.faults = faults
        self.available = dict(stock)
        self.reservations: dict[str, Reservation] = {}

    async def reserve(self, order_id: str, lines: Sequence[StockLine], *, ttl_seconds: int) -> None:
        await self.faults.before("inventory", "reserve")
        if order_id not in self.reservations:
            for line in lines:
                if line.product_id not in self.available:
                    raise UpstreamError(
                        "inventory", FailureKind.NOT_FOUND, "unknown", subject=line.product_id
                    )
                if self.available[line.product_id] < line.quantity:
                    raise UpstreamError(
                        "inventory", FailureKind.REFUSED, "short", subject=line.product_id
                    )
            for line in lines:
                self.available[line.product_id] -= line.quantity
            self.reservations[order_id] = Reservation(tuple(lines))
        await self.faults.after("inventory", "reserve")

    async def release(self, order_id: str) -> None:
        await self.faults.before("inventory", "release")
        reservation = self.reservations.get(order_id)
        if reservation is None:
            raise UpstreamError("inventory", FailureKind.NOT_FOUND, "no reservation")
        if reservation.state == "COMMITTED":
            raise UpstreamError("inventory", FailureKind.REFUSED, "already committed")
        if reservation.state == "RESERVED":
            for line in reservation.lines:
                self.available[line.product_id] += line.quantity
            reservation.state = "RELEASED"

    async def commit(self, order_id: str) -> None:
        await self.faults.before("inventory", "commit")
        reservation = self.reservations.get(order_id)
        if reservation is None:
            raise UpstreamError("inventory", FailureKind.NOT_FOUND, "no reservation")
        if reservation.state == "RELEASED":
            raise UpstreamError("inventory", FailureKind.REFUSED, "released")
        reservation.state = "COMMITTED"
        await self.faults.after("inventory", "commit")


@dataclass
class FakePayment:
    payment_id: str
    order_id: str
    user_id: str
    amount: Money
    state: PaymentState
    decline_reason: str = ""


class FakePayments:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.by_key: dict[str, FakePayment] = {}
        self.refund_keys: set[str] = set()
        self.network_calls = 0

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        await self.faults.before("payment", "charge")
        payment = self.by_key.get(request.idempotency_key)
        if payment is None:
            self.network_calls += 1
            reason = DECLINED.get(request.card.number, "")
            payment = FakePayment(
                payment_id=f"pay-{len(self.by_key) + 1}",
                order_id=request.order_id,
                user_id=request.user_id,
                amount=request.amount,
                state=PaymentState.DECLINED if reason else PaymentState.CAPTURED,
                decline_reason=reason,
            )
            self.by_key[request.idempotency_key] = payment
        await self.faults.after("payment", "charge")
        return _outcome(payment)

    async def refund(self, payment_id: str, idempotency_key: str, reason: str) -> None:
        await self.faults.before("payment", "refund")
        for payment in self.by_key.values():
            if payment.payment_id == payment_id:
                if payment.state is PaymentState.DECLINED:
                    raise UpstreamError("payment", FailureKind.REFUSED, "declined")
                payment.state = PaymentState.REFUNDED
                self.refund_keys.add(idempotency_key)
                return
        raise UpstreamError("payment", FailureKind.NOT_FOUND, payment_id)

    async def find_charge(self, user_id: str, order_id: str) -> ChargeOutcome | None:
        await self.faults.before("payment", "find_charge")
        for payment in self.by_key.values():
            if payment.order_id == order_id:
                return _outcome(payment)
        return None

    def states(self) -> list[PaymentState]:
        return [payment.state for payment in self.by_key.values()]


def _outcome(payment: FakePayment) -> ChargeOutcome:
    return ChargeOutcome(payment.payment_id, payment.state, payment.decline_reason)
