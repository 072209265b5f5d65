"""What AddItem answers when the catalog is down or hangs: UNAVAILABLE, fast, nothing stored."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from meshmart.cart.v1 import cart_pb2
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.kit.db import Database
from services.kit.server import ServiceSpec
from services.kit.testing import running_server
from tests.unit.cart.harness import USER, running_cart

ADD = cart_pb2.AddItemRequest(user_id=USER, product_id="sku-1001", quantity=1)


class HangingCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """A catalog that accepts GetProduct and never answers (a stuck upstream).

    The cart only ever calls GetProduct; the other two exist to satisfy the interface.
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: object
    ) -> catalog_pb2.GetProductResponse:
        await self.release.wait()
        return catalog_pb2.GetProductResponse()

    async def ListProducts(
        self, request: catalog_pb2.ListProductsRequest, context: object
    ) -> catalog_pb2.ListProductsResponse:
        raise NotImplementedError

    async def SearchProducts(
        self, request: catalog_pb2.SearchProductsRequest, context: object
    ) -> catalog_pb2.SearchProductsResponse:
        raise NotImplementedError


@pytest.fixture
async def hanging_catalog() -> AsyncIterator[str]:
    servicer = HangingCatalog()
    spec = ServiceSpec(
        name="meshmart.catalog.v1.CatalogService",
        add=lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server),
    )
    async with running_server([spec]) as target:
        yield target
        servicer.release.set()


@pytest.fixture
def dead_catalog() -> str:
    """An address nothing listens on: the port was free a moment ago and is closed now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


async def test_an_unreachable_catalog_makes_add_item_unavailable(
    cart_db: Database, dead_catalog: str
) -> None:
    async with running_cart(cart_db, dead_catalog) as cart:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await cart.stub.AddItem(ADD, timeout=5)

        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "catalog is unavailable" in (caught.value.details() or "")
        assert cart.row_count() == 0


async def test_a_hanging_catalog_is_cut_off_by_the_deadline(
    cart_db: Database, hanging_catalog: str
) -> None:
    async with running_cart(cart_db, hanging_catalog, catalog_timeout_seconds=0.2) as cart:
        started = time.perf_counter()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await cart.stub.AddItem(ADD, timeout=5)
        elapsed = time.perf_counter() - started

        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "DEADLINE_EXCEEDED" in (caught.value.details() or "")
        # The cart's own deadline on catalog (0.2 s) answered, not the client's 5 s.
        assert elapsed < 2
        assert cart.row_count() == 0


async def test_reads_and_removals_work_while_the_catalog_is_down(
    cart_db: Database, dead_catalog: str
) -> None:
    async with running_cart(cart_db, dead_catalog) as cart:
        got = await cart.stub.GetCart(cart_pb2.GetCartRequest(user_id=USER), timeout=5)
        removed = await cart.stub.RemoveItem(
            cart_pb2.RemoveItemRequest(user_id=USER, product_id="sku-1001"), timeout=5
        )
        cleared = await cart.stub.Clear(cart_pb2.ClearRequest(user_id=USER), timeout=5)

    assert got.cart == removed.cart == cleared.cart
