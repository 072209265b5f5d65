"""gRPC face of cart: validate the request, call the CartBook, map the cart to protobuf."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.common.v1 import common_pb2

from services.kit.context import acting_user
from services.kit.server import ServiceSpec

from .domain import CartBook
from .model import Cart

SERVICE_NAME = "meshmart.cart.v1.CartService"

# grpc ships no type hints, so this is Any to mypy; it names what the argument is.
Context: TypeAlias = grpc.aio.ServicerContext


class CartServicer(cart_pb2_grpc.CartServiceServicer):
    def __init__(self, book: CartBook) -> None:
        self._book = book

    async def GetCart(
        self, request: cart_pb2.GetCartRequest, context: Context
    ) -> cart_pb2.GetCartResponse:
        user_id = acting_user(context, request.user_id)
        return cart_pb2.GetCartResponse(
            cart=cart_to_proto(await self._book.db.run(self._book.get, user_id))
        )

    async def AddItem(
        self, request: cart_pb2.AddItemRequest, context: Context
    ) -> cart_pb2.AddItemResponse:
        user_id = acting_user(context, request.user_id)
        product_id = request.product_id
        quantity = request.quantity
        cart = await self._book.add_item(user_id, product_id, quantity)
        return cart_pb2.AddItemResponse(cart=cart_to_proto(cart))

    async def UpdateQuantity(
        self, request: cart_pb2.UpdateQuantityRequest, context: Context
    ) -> cart_pb2.UpdateQuantityResponse:
        user_id = acting_user(context, request.user_id)
        product_id = request.product_id
        quantity = request.quantity
        cart = await self._book.update_quantity(user_id, product_id, quantity)
        return cart_pb2.UpdateQuantityResponse(cart=cart_to_proto(cart))

    async def RemoveItem(
        self, request: cart_pb2.RemoveItemRequest, context: Context
    ) -> cart_pb2.RemoveItemResponse:
        user_id = acting_user(context, request.user_id)
        product_id = request.product_id
        cart = await self._book.db.run(self._book.remove_item, user_id, product_id)
        return cart_pb2.RemoveItemResponse(cart=cart_to_proto(cart))

    async def Clear(
        self, request: cart_pb2.ClearRequest, context: Context
    ) -> cart_pb2.ClearResponse:
        user_id = acting_user(context, request.user_id)
        return cart_pb2.ClearResponse(
            cart=cart_to_proto(await self._book.db.run(self._book.clear, user_id))
        )


def cart_to_proto(cart: Cart) -> cart_pb2.Cart:
    return cart_pb2.Cart(
        user_id=cart.user_id,
        items=[
            cart_pb2.CartItem(
                product_id=line.product_id,
                name=line.name,
                quantity=line.quantity,
                unit_price=common_pb2.Money(
                    amount_minor=line.unit_price_minor, currency=line.currency
                ),
                line_total=common_pb2.Money(
                    amount_minor=line.line_total_minor, currency=line.currency
                ),
            )
            for line in cart.lines
        ],
        total=common_pb2.Money(amount_minor=cart.total_minor, currency=cart.currency),
    )


def service_spec(servicer: CartServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: cart_pb2_grpc.add_CartServiceServicer_to_server(servicer, server),
    )
