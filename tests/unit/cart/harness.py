"""What the cart tests share: a running cart server, and reading field violations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import grpc
from meshmart.cart.v1 import cart_pb2_grpc
from meshmart.catalog.v1 import catalog_pb2_grpc

from services.cart.catalog_client import CatalogProducts
from services.cart.domain import CartBook
from services.cart.servicer import CartServicer, service_spec
from services.cart.store import CartStore
from services.kit.clients import channel_to
from services.kit.db import Database
from services.kit.testing import running_server

USER = "user-1"


@dataclass
class CartHarness:
    stub: cart_pb2_grpc.CartServiceAsyncStub
    db: Database

    def row_count(self) -> int:
        return int(self.db.read().execute("SELECT count(*) FROM cart_items").fetchone()[0])


@asynccontextmanager
async def running_cart(
    db: Database, catalog_target: str, *, catalog_timeout_seconds: float = 1.0
) -> AsyncIterator[CartHarness]:
    """The cart service wired as __main__ wires it, against the catalog at catalog_target."""
    async with channel_to(catalog_target) as catalog_channel:
        catalog = cast(
            "catalog_pb2_grpc.CatalogServiceAsyncStub",
            catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
        )
        book = CartBook(
            CartStore(db),
            CatalogProducts(catalog, timeout_seconds=catalog_timeout_seconds),
            currency="EUR",
        )
        async with (
            running_server([service_spec(CartServicer(book))]) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            stub = cast(
                "cart_pb2_grpc.CartServiceAsyncStub", cart_pb2_grpc.CartServiceStub(channel)
            )
            yield CartHarness(stub=stub, db=db)
