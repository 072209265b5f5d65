"""RecommendationService over real gRPC: a real catalog (SQLite in tmp_path), the order
history from an in-process OrderService, and the recommendation server in between."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from meshmart.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc

from services.catalog.seed import SEED_PRODUCTS
from services.catalog.servicer import CatalogServicer, service_spec
from services.catalog.store import DB_FILE, MIGRATIONS, load_catalog
from services.kit.clients import channel_to
from services.kit.db import Database
from services.kit.testing import running_server
from services.recommendation.app import build_spec
from services.recommendation.settings import RecommendationSettings
from tests.unit.recommendation import fake_order
from tests.unit.recommendation.fake_order import (
    RecentOrdersServicer,
    cancelled_order,
    confirmed_order,
)

PERSONALIZED = recommendation_pb2.RECOMMENDATION_SOURCE_PERSONALIZED
POPULAR = recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR
TIMEOUT = 5.0
# No model caching unless a test asks for it: each Recommend reads the history afresh.
SETTINGS = RecommendationSettings(order_timeout=0.5, catalog_timeout=3.0, model_ttl=0.0)
BY_POPULARITY = [
    p.product_id for p in sorted(SEED_PRODUCTS, key=lambda p: (-p.popularity, p.product_id))
]


def closed_port_target() -> str:
    """An address nothing listens on: calls to it fail with UNAVAILABLE at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def catalog_target(tmp_path: Path) -> AsyncIterator[str]:
    db = Database(tmp_path / DB_FILE, MIGRATIONS)
    catalog, _ = load_catalog(db)
    try:
        async with running_server([service_spec(CatalogServicer(catalog))]) as target:
            yield target
    finally:
        db.close()


@pytest.fixture
async def history() -> AsyncIterator[tuple[RecentOrdersServicer, str]]:
    # Only the reads are implemented; the base class answers UNIMPLEMENTED for the rest.
    servicer = RecentOrdersServicer()  # type: ignore[abstract]
    async with running_server([fake_order.spec(servicer)]) as target:
        yield servicer, target


@asynccontextmanager
async def recommendation(
    order_target: str, catalog_target: str, settings: RecommendationSettings = SETTINGS
) -> AsyncIterator[recommendation_pb2_grpc.RecommendationServiceAsyncStub]:
    async with (
        channel_to(order_target) as order_channel,
        channel_to(catalog_target) as catalog_channel,
        running_server([build_spec(order_channel, catalog_channel, settings)]) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        yield recommendation_pb2_grpc.RecommendationServiceStub(channel)  # type: ignore[misc]


async def recommend(
    stub: recommendation_pb2_grpc.RecommendationServiceAsyncStub,
    user_id: str,
    limit: int = 0,
    metadata: tuple[tuple[str, str], ...] = (),
) -> recommendation_pb2.RecommendResponse:
    request = recommendation_pb2.RecommendRequest(user_id=user_id, limit=limit)
    response: recommendation_pb2.RecommendResponse = await stub.Recommend(
        request, timeout=TIMEOUT, metadata=metadata
    )
    return response


def ids(response: recommendation_pb2.RecommendResponse) -> list[str]:
    return [p.product_id for p in response.products]


async def test_recommends_what_others_bought_with_the_users_products(
    history: tuple[RecentOrdersServicer, str], catalog_target: str
) -> None:
    orders, order_target = history
    orders.orders = [
        confirmed_order("o4", "ann", "sku-1001"),
        confirmed_order("o3", "bob", "sku-1001", "sku-1010", "sku-1020"),
        confirmed_order("o2", "cy", "sku-1001", "sku-1010"),
        confirmed_order("o1", "dee", "sku-1030", "sku-1031"),  # nothing in common with ann
    ]
    async with recommendation(order_target, catalog_target) as stub:
        response = await recommend(stub, "ann", limit=2)

    assert response.source == PERSONALIZED
    # sku-1010 was ordered with ann's sku-1001 twice, sku-1020 once; ann's own is left out.
    assert ids(response) == ["sku-1010", "sku-1020"]
    seed = {p.product_id: p for p in SEED_PRODUCTS}
    first = response.products[0]
    assert first.name == seed["sku-1010"].name
    assert first.price.amount_minor == seed["sku-1010"].price_minor


async def test_personal_picks_are_padded_with_popular_products_up_to_the_limit(
    history: tuple[RecentOrdersServicer, str], catalog_target: str
) -> None:
    orders, order_target = history
    orders.orders = [
        confirmed_order("o2", "ann", "sku-1001"),
        confirmed_order("o1", "bob", "sku-1001", "sku-1010"),
    ]
    async with recommendation(order_target, catalog_target) as stub:
        response = await recommend(stub, "ann")  # the default limit, 10

    assert response.source == PERSONALIZED
    assert len(response.products) == 10
    assert ids(response)[0] == "sku-1010"
    assert "sku-1001" not in ids(response)
    assert len(set(ids(response))) == 10


async def test_a_user_without_history_gets_the_most_ordered_products(
    history: tuple[RecentOrdersServicer, str], catalog_target: str
) -> None:
    orders, order_target = history
    orders.orders = [
        confirmed_order("o3", "bob", "sku-1030", "sku-1031"),
        confirmed_order("o2", "cy", "sku-1031"),
        confirmed_order("o1", "dee", "sku-1031"),
        cancelled_order("o0", "eve", "sku-1040"),
    ]
    async with recommendation(order_target, catalog_target) as stub:
        response = await recommend(stub, "zoe", limit=2)

    assert response.source == POPULAR
    # A cancelled order was never bought: it does not make sku-1040 popular.
    assert ids(response) == ["sku-1031", "sku-1030"]


async def test_without_any_orders_the_catalogs_popularity_decides(
    history: tuple[RecentOrdersServicer, str], catalog_target: str
) -> None:
    _, order_target = history
    async with recommendation(order_target, catalog_target) as stub:
        response = await recommend(stub, "ann", limit=5)

    assert response.source == POPULAR
    assert ids(response) == BY_POPULARITY[:5]


async def test_order_down_falls_back_to_catalog_popularity(catalog_target: str) -> None:
    async with recommendation(closed_port_target(), catalog_target) as stub:
        response = await recommend(stub, "ann", limit=3)

    assert response.source == POPULAR
    assert ids(response) == BY_POPULARITY[:3]


async def test_a_hanging_order_costs_one_order_timeout_then_popular(
    history: tuple[RecentOrdersServicer, str], catalog_target: str
) -> None:
    orders, order_target = history
    orders.orders = [confirmed_order("o1", "bob", "sku-1001", "sku-1010")]
    orders.hang = True
    async with recommendation(order_target, catalog_target) as stub:
        started = time.monotonic()
        responses = await asyncio.gather(*(recommend(stub, "bob", limit=3) for _ in range(5)))
        elapsed = time.monotonic() - started

    assert all(r.source == POPULAR and ids(r) == BY_POPULARITY[:3] for r in responses)
    # Concurrent requests share one history read, so they share one timeout too.
    assert orders.calls == 1
    assert elapsed < SETTINGS.order_timeout + SETTINGS.catalog_timeout


async def test_the_model_is_reused_within_its_ttl(
    history: tuple[RecentOrdersServicer, str], catalog_target: str
) -> None:
    orders, order_target = history
    orders.orders = [confirmed_order("o1", "bob", "sku-1001", "sku-1010")]
    cached = replace(SETTINGS, model_ttl=600.0)
    async with recommendation(order_target, catalog_target, cached) as stub:
        before = await recommend(stub, "ann", limit=1)
        orders.orders.insert(0, confirmed_order("o2", "ann", "sku-1001"))
        after = await recommend(stub, "ann", limit=1)

    assert orders.calls == 1
    # ann's new order is not in the cached model yet: still popular, not personalized.
    assert before.source == after.source == POPULAR


async def test_catalog_down_is_unavailable(history: tuple[RecentOrdersServicer, str]) -> None:
    _, order_target = history
    async with recommendation(order_target, closed_port_target()) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await recommend(stub, "ann")

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(("user_id", "limit"), [("", 5), ("   ", 5), ("ann", 51), ("ann", -1)])
async def test_bad_requests_are_invalid_argument(
    history: tuple[RecentOrdersServicer, str], catalog_target: str, user_id: str, limit: int
) -> None:
    _, order_target = history
    async with recommendation(order_target, catalog_target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await recommend(stub, user_id, limit)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_users_recommendations_are_permission_denied(
    history: tuple[RecentOrdersServicer, str], catalog_target: str
) -> None:
    _, order_target = history
    async with recommendation(order_target, catalog_target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await recommend(stub, "ann", metadata=(("x-meshmart-user-id", "bob"),))

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
