"""gRPC face of order: validate the request, call the saga or the store, map the result."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TypeAlias

import grpc
from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2

from services.kit import validate
from services.kit.clock import timestamp, utc_now
from services.kit.context import acting_user
from services.kit.errors import InvalidArgument, NotFound
from services.kit.server import ServiceSpec

from .model import Address, Card, Contact, Order, OrderState, PlaceOrderCommand
from .saga import PlaceOrderSaga
from .store import OrderStore

# grpc ships no type hints, so this is Any to mypy; it names what the argument is.
Context: TypeAlias = grpc.aio.ServicerContext

SERVICE_NAME = "meshmart.order.v1.OrderService"

_DIGITS = re.compile(r"^[0-9]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")

_STATE_TO_PROTO = {
    OrderState.PENDING: order_pb2.Order.STATE_PENDING,
    OrderState.CONFIRMED: order_pb2.Order.STATE_CONFIRMED,
    OrderState.CANCELLED: order_pb2.Order.STATE_CANCELLED,
}


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        store: OrderStore,
        saga: PlaceOrderSaga,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._store = store
        self._saga = saga
        self._clock = clock

    async def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: Context
    ) -> order_pb2.PlaceOrderResponse:
        user_id = acting_user(context, request.user_id)
        key = request.idempotency_key
        # The card's and the address's shape stay here: every bad field in one answer, so
        # a form can mark them all at once (the contract's rules stop at the first).
        violations: list[tuple[str, str]] = []
        card = _card(request.card, self._clock().date(), violations)
        address = _address(request.shipping_address, violations)
        if violations:
            raise InvalidArgument.of(violations)
        command = PlaceOrderCommand(
            user_id=user_id, idempotency_key=key, card=card, shipping_address=address
        )
        order = await self._saga.place(command)
        return order_pb2.PlaceOrderResponse(
            order=order_to_proto(
                order, await self._store.db.run(self._store.contact, order.user_id)
            )
        )

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Context
    ) -> order_pb2.GetOrderResponse:
        order_id = request.order_id.strip()
        user_id = acting_user(context, request.user_id)
        order = await self._store.db.run(self._store.get, order_id)
        # Another user's order is answered like a missing one: ids are not to be probed.
        if order is None or order.user_id != user_id:
            raise NotFound(f"order {order_id} not found")
        # The customer comes from order's own copy: GetOrder works with user down.
        return order_pb2.GetOrderResponse(
            order=order_to_proto(
                order, await self._store.db.run(self._store.contact, order.user_id)
            )
        )

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Context
    ) -> order_pb2.ListOrdersResponse:
        user_id = acting_user(context, request.user_id)
        page = await self._store.db.run(
            self._store.list_for_user, user_id, _page_size(request.page_size), request.page_token
        )
        customer = await self._store.db.run(self._store.contact, user_id)
        return order_pb2.ListOrdersResponse(
            orders=[order_to_proto(order, customer) for order in page.orders],
            next_page_token=page.next_page_token,
        )

    async def ListRecentOrders(
        self, request: order_pb2.ListRecentOrdersRequest, context: Context
    ) -> order_pb2.ListRecentOrdersResponse:
        page = await self._store.db.run(
            self._store.list_recent, _page_size(request.page_size), request.page_token
        )
        customers = await self._store.db.run(
            self._store.contacts, [order.user_id for order in page.orders]
        )
        return order_pb2.ListRecentOrdersResponse(
            orders=[order_to_proto(order, customers.get(order.user_id)) for order in page.orders],
            next_page_token=page.next_page_token,
        )


def service_spec(servicer: OrderServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server),
    )


def _page_size(value: int) -> int:
    return validate.page_size(value)  # 0 means the default; the contract bounds the rest


def _card(card: payment_pb2.Card, today: dt.date, violations: list[tuple[str, str]]) -> Card:
    """Shape checks only (appended to ``violations``); whether it pays is payment's business."""
    if not (_DIGITS.match(card.number) and 12 <= len(card.number) <= 19):
        violations.append(("card.number", "must be 12 to 19 digits"))
    if not 1 <= card.exp_month <= 12:
        violations.append(("card.exp_month", "must be between 1 and 12"))
    if not 1000 <= card.exp_year <= 9999:
        violations.append(("card.exp_year", "must be a four-digit year"))
    elif (card.exp_year, card.exp_month) < (today.year, today.month):
        # Checked here so an expired card is a request error, not a cancelled order.
        violations.append(("card.exp_year", "card has expired"))
    if not (_DIGITS.match(card.cvc) and 3 <= len(card.cvc) <= 4):
        violations.append(("card.cvc", "must be 3 or 4 digits"))
    return Card(number=card.number, exp_month=card.exp_month, exp_year=card.exp_year, cvc=card.cvc)


def _address(address: order_pb2.Address, violations: list[tuple[str, str]]) -> Address:
    def text(value: str, field: str, lo: int, hi: int) -> str:
        value = value.strip()
        if not lo <= len(value) <= hi:
            violations.append((f"shipping_address.{field}", f"must be {lo} to {hi} characters"))
        return value

    result = Address(
        name=text(address.name, "name", 1, 200),
        line1=text(address.line1, "line1", 1, 200),
        line2=text(address.line2, "line2", 0, 200),
        city=text(address.city, "city", 1, 100),
        postal_code=text(address.postal_code, "postal_code", 1, 20),
        country=address.country.strip().upper(),
    )
    if not _COUNTRY.match(result.country):
        violations.append(
            ("shipping_address.country", "must be an ISO 3166-1 alpha-2 code like DE")
        )
    return result


def order_to_proto(order: Order, customer: Contact | None = None) -> order_pb2.Order:
    currency = order.currency
    address = order.shipping_address
    message = order_pb2.Order(
        order_id=order.order_id,
        user_id=order.user_id,
        state=_STATE_TO_PROTO[order.state],
        lines=[
            order_pb2.OrderLine(
                product_id=line.product_id,
                name=line.name,
                quantity=line.quantity,
                unit_price=common_pb2.Money(amount_minor=line.unit_price_minor, currency=currency),
                line_total=common_pb2.Money(amount_minor=line.line_total_minor, currency=currency),
            )
            for line in order.lines
        ],
        total=common_pb2.Money(amount_minor=order.total.amount_minor, currency=currency),
        payment_id=order.payment_id,
        cancel_reason=order.cancel_reason,
        created_at=timestamp(order.created_at),
        updated_at=timestamp(order.updated_at),
        shipping_address=order_pb2.Address(
            name=address.name,
            line1=address.line1,
            line2=address.line2,
            city=address.city,
            postal_code=address.postal_code,
            country=address.country,
        ),
    )
    if customer is not None:
        message.customer.CopyFrom(
            order_pb2.Customer(
                user_id=customer.user_id,
                email=customer.email,
                full_name=customer.full_name,
                phone=customer.phone,
            )
        )
    return message
