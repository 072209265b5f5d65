"""The saga's ports over gRPC: user, cart, inventory and payment.

Each adapter gets its stub injected (built by app.py on a kit channel) and its deadline,
which every call carries. Status codes become ports.FailureKind, the only thing the
saga decides on; retries are Envoy's job, so there are none here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.common.v1 import common_pb2
from meshmart.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from .model import Contact, Money, PaymentState
from .ports import CartLine, ChargeOutcome, ChargeRequest, FailureKind, StockLine, UpstreamError

# Codes after which the call may or may not have taken effect (or never got there).
_UNREACHABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}
_KINDS = {
    grpc.StatusCode.FAILED_PRECONDITION: FailureKind.REFUSED,
    grpc.StatusCode.NOT_FOUND: FailureKind.NOT_FOUND,
}
_PAYMENT_STATES = {
    payment_pb2.Payment.STATUS_CAPTURED: PaymentState.CAPTURED,
    payment_pb2.Payment.STATUS_DECLINED: PaymentState.DECLINED,
    payment_pb2.Payment.STATUS_REFUNDED: PaymentState.REFUNDED,
}
# ListPayments' largest page, and how many pages a lookup reads at most (newest first:
# the charge of an order being placed is among a user's latest payments).
_PAYMENT_PAGE = 100
_PAYMENT_LOOKUP_PAGES = 20


def upstream_error(
    service: str, error: grpc.aio.AioRpcError, *, subject: str = ""
) -> UpstreamError:
    code = error.code()
    kind = (
        FailureKind.UNREACHABLE if code in _UNREACHABLE else _KINDS.get(code, FailureKind.INVALID)
    )
    # The upstream's message is written for people (it ends up in cancel reasons).
    return UpstreamError(service, kind, error.details() or code.name, subject=subject)


class GrpcUsers:
    def __init__(self, stub: user_pb2_grpc.UserServiceAsyncStub, *, timeout_seconds: float) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds

    async def contact(self, user_id: str) -> Contact:
        try:
            response = await self._stub.GetUser(
                user_pb2.GetUserRequest(user_id=user_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error("user", error) from error
        user = response.user
        return Contact(
            user_id=user.user_id,
            email=user.email,
            full_name=user.full_name,
            phone=user.phone,
            updated_at=user.updated_at.ToDatetime(dt.UTC) if user.HasField("updated_at") else None,
        )


class GrpcCarts:
    def __init__(self, stub: cart_pb2_grpc.CartServiceAsyncStub, *, timeout_seconds: float) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds

    async def lines(self, user_id: str) -> list[CartLine]:
        try:
            response = await self._stub.GetCart(
                cart_pb2.GetCartRequest(user_id=user_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error("cart", error) from error
        return [
            CartLine(
                product_id=item.product_id,
                name=item.name,
                quantity=item.quantity,
                unit_price=Money(item.unit_price.amount_minor, item.unit_price.currency),
            )
            for item in response.cart.items
        ]

    async def clear(self, user_id: str) -> None:
        try:
            await self._stub.Clear(
                cart_pb2.ClearRequest(user_id=user_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error("cart", error) from error


class GrpcInventory:
    def __init__(
        self, stub: inventory_pb2_grpc.InventoryServiceAsyncStub, *, timeout_seconds: float
    ) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds

    async def reserve(self, order_id: str, lines: Sequence[StockLine], *, ttl_seconds: int) -> None:
        request = inventory_pb2.ReserveRequest(
            order_id=order_id,
            lines=[
                inventory_pb2.ReservationLine(product_id=line.product_id, quantity=line.quantity)
                for line in lines
            ],
            ttl_seconds=ttl_seconds,
        )
        try:
            await self._stub.Reserve(request, timeout=self._timeout_seconds)
        except grpc.aio.AioRpcError as error:
            raise upstream_error(
                "inventory", error, subject=_named_product(error, lines)
            ) from error

    async def release(self, order_id: str) -> None:
        try:
            await self._stub.Release(
                inventory_pb2.ReleaseRequest(order_id=order_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error("inventory", error) from error

    async def commit(self, order_id: str) -> None:
        try:
            await self._stub.Commit(
                inventory_pb2.CommitRequest(order_id=order_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error("inventory", error) from error


def _named_product(error: grpc.aio.AioRpcError, lines: Sequence[StockLine]) -> str:
    """The product a Reserve failure is about.

    Inventory attaches a google.rpc.PreconditionFailure naming the short products; without
    one (e.g. NOT_FOUND), look for one of our product ids in the message rather than parse
    its wording.
    """
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure) and failure.violations:
            return str(failure.violations[0].subject)
    message = error.details() or ""
    # Longest first, so "sku-10" never shadows "sku-1001".
    for product_id in sorted((line.product_id for line in lines), key=len, reverse=True):
        if product_id in message:
            return product_id
    return ""


class GrpcPayments:
    def __init__(
        self, stub: payment_pb2_grpc.PaymentServiceAsyncStub, *, timeout_seconds: float
    ) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        card = request.card
        try:
            response = await self._stub.Charge(
                payment_pb2.ChargeRequest(
                    idempotency_key=request.idempotency_key,
                    order_id=request.order_id,
                    user_id=request.user_id,
                    amount=common_pb2.Money(
                        amount_minor=request.amount.amount_minor, currency=request.amount.currency
                    ),
                    card=payment_pb2.Card(
                        number=card.number,
                        exp_month=card.exp_month,
                        exp_year=card.exp_year,
                        cvc=card.cvc,
                    ),
                ),
                timeout=self._timeout_seconds,
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error("payment", error) from error
        return _outcome(response.payment)

    async def refund(self, payment_id: str, idempotency_key: str, reason: str) -> None:
        try:
            await self._stub.Refund(
                payment_pb2.RefundRequest(
                    payment_id=payment_id, idempotency_key=idempotency_key, reason=reason
                ),
                timeout=self._timeout_seconds,
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_error("payment", error) from error

    async def find_charge(self, user_id: str, order_id: str) -> ChargeOutcome | None:
        # One deadline for the whole walk, however many pages it takes.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_seconds
        token = ""
        for _ in range(_PAYMENT_LOOKUP_PAGES):
            request = payment_pb2.ListPaymentsRequest(
                user_id=user_id, page_size=_PAYMENT_PAGE, page_token=token
            )
            try:
                response = await self._stub.ListPayments(
                    request, timeout=max(deadline - loop.time(), 0.001)
                )
            except grpc.aio.AioRpcError as error:
                raise upstream_error("payment", error) from error
            for payment in response.payments:
                if payment.order_id == order_id:
                    return _outcome(payment)
            token = response.next_page_token
            if not token:
                break
        # Not among the newest payments: an order's charge is made while it is placed, so
        # one this far back does not exist (and reading on would have no end).
        return None


def _outcome(payment: payment_pb2.Payment) -> ChargeOutcome:
    state = _PAYMENT_STATES.get(payment.status)
    if state is None:
        raise UpstreamError(
            "payment", FailureKind.INVALID, f"payment {payment.payment_id} has no status"
        )
    return ChargeOutcome(
        payment_id=payment.payment_id, state=state, decline_reason=payment.decline_reason
    )
