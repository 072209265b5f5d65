"""RecommendationService over real gRPC, on top of the real in-process shop: the history
comes from orders placed through the real order saga, the products from the real catalog,
the users from the real user service."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import grpc
import pytest
from meshmart.catalog.v1 import catalog_pb2
from meshmart.order.v1 import order_pb2
from meshmart.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc

from harness.shop import CAPTURE_CARD, DECLINE_CARD, Shop, running_shop
from services.catalog.seed import SEED_PRODUCTS
from services.kit.testing import config_for_tests, running_service
from services.recommendation.app import build
from services.recommendation.settings import RecommendationSettings
from tests.unit.recommendation.net import black_hole, closed_port_target

PERSONALIZED = recommendation_pb2.RECOMMENDATION_SOURCE_PERSONALIZED
POPULAR = recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR
TIMEOUT = 10.0
# No model caching (ttl 0): each Recommend reads the history afresh, so a test sees the
# orders it just placed. The Recommender's caching is tested in test_recommender.py.
SETTINGS = RecommendationSettings(
    order_timeout_seconds=1.0,
    catalog_timeout_seconds=3.0,
    user_timeout_seconds=0.5,
    model_ttl_seconds=0.0,
)
BY_POPULARITY = [
    p.product_id for p in sorted(SEED_PRODUCTS, key=lambda p: (-p.popularity, p.product_id))
]
_keys = itertools.count(1)


@asynccontextmanager
async def recommendation(
    order_target: str,
    catalog_target: str,
    user_target: str,
    settings: RecommendationSettings = SETTINGS,
) -> AsyncIterator[recommendation_pb2_grpc.RecommendationServiceAsyncStub]:
    targets = {"order": order_target, "catalog": catalog_target, "user": user_target}
    async with (
        running_service(
            config_for_tests("recommendation", upstreams=targets), partial(build, settings=settings)
        ) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        yield recommendation_pb2_grpc.RecommendationServiceStub(channel)  # type: ignore[misc]


def upstreams(shop: Shop) -> tuple[str, str, str]:
    return shop.targets["order"], shop.targets["catalog"], shop.targets["user"]


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


async def buy(shop: Shop, *product_ids: str, card: str = CAPTURE_CARD) -> str:
    """A new user orders the products (one each) through the real saga; returns the user."""
    user = await shop.register()
    for product_id in product_ids:
        await shop.add_to_cart(user.user_id, product_id)
    order = await shop.place_order(user.user_id, f"key-{next(_keys)}", card)
    if card == CAPTURE_CARD:
        assert order.state == order_pb2.Order.STATE_CONFIRMED, order.cancel_reason
    return user.user_id


async def test_recommends_what_others_bought_with_the_users_products(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010", "sku-1020")
        await buy(shop, "sku-1001", "sku-1010")
        await buy(shop, "sku-1030", "sku-1031")  # nothing in common with ann
        ann = await buy(shop, "sku-1001")
        async with recommendation(*upstreams(shop)) as stub:
            top_two = await recommend(stub, ann, limit=2)
            default = await recommend(stub, ann)
        catalog_answer: catalog_pb2.GetProductResponse = await shop.catalog.GetProduct(
            catalog_pb2.GetProductRequest(product_id="sku-1010"), timeout=TIMEOUT
        )

    assert top_two.source == PERSONALIZED
    # sku-1010 was ordered next to ann's sku-1001 twice, sku-1020 once.
    assert ids(top_two) == ["sku-1010", "sku-1020"]
    assert top_two.products[0] == catalog_answer.product  # the full catalog product
    # The default limit is 10: personal picks first, then popular ones, never ann's own.
    assert default.source == PERSONALIZED
    assert ids(default)[:2] == ["sku-1010", "sku-1020"]
    assert len(set(ids(default))) == 10
    assert "sku-1001" not in ids(default)


async def test_a_user_without_history_gets_the_most_ordered_products(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1030", "sku-1031")
        await buy(shop, "sku-1031")
        # Declined: the order is CANCELLED, so sku-1040 was never bought.
        await buy(shop, "sku-1040", card=DECLINE_CARD)
        await buy(shop, "sku-1040", card=DECLINE_CARD)
        newcomer = await shop.register()
        async with recommendation(*upstreams(shop)) as stub:
            response = await recommend(stub, newcomer.user_id, limit=2)

    assert response.source == POPULAR
    assert ids(response) == ["sku-1031", "sku-1030"]


async def test_without_any_orders_the_catalogs_popularity_decides(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        newcomer = await shop.register()
        async with recommendation(*upstreams(shop)) as stub:
            response = await recommend(stub, newcomer.user_id, limit=5)

    assert response.source == POPULAR
    assert ids(response) == BY_POPULARITY[:5]


async def test_an_unknown_user_is_not_found(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010")
        async with recommendation(*upstreams(shop)) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await recommend(stub, "usr-nobody-knows", limit=3)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "user usr-nobody-knows not found"


async def test_user_stopped_still_gets_recommendations(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010")
        ann = await buy(shop, "sku-1001")
        order, catalog, _ = upstreams(shop)
        async with recommendation(order, catalog, closed_port_target()) as stub:
            response = await recommend(stub, ann, limit=3)

    # Nothing lost but the lookup: ann's own recommendations.
    assert response.source == PERSONALIZED
    assert ids(response)[0] == "sku-1010"


async def test_order_stopped_falls_back_to_catalog_popularity(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010")
        ann = await buy(shop, "sku-1001")
        async with recommendation(*upstreams(shop)) as stub:
            before = await recommend(stub, ann, limit=3)
            await shop.stop_order()
            after = await recommend(stub, ann, limit=3)

    assert before.source == PERSONALIZED
    assert after.source == POPULAR
    assert ids(after) == BY_POPULARITY[:3]


@pytest.mark.parametrize("hung", ["user", "order"])
async def test_a_hanging_user_or_order_costs_one_timeout_then_popular(
    tmp_path: Path, hung: str
) -> None:
    async with running_shop(tmp_path) as shop, black_hole() as hung_target:
        newcomer = await shop.register()
        targets = {**shop.targets, hung: hung_target}
        async with recommendation(targets["order"], targets["catalog"], targets["user"]) as stub:
            started = time.monotonic()
            response = await recommend(stub, newcomer.user_id, limit=3)
            elapsed = time.monotonic() - started

    assert response.source == POPULAR
    assert ids(response) == BY_POPULARITY[:3]
    # Cut off by that upstream's deadline (user 0.5 s, order 1 s here), not left waiting
    # on the hung process.
    budget = {"user": SETTINGS.user_timeout_seconds, "order": SETTINGS.order_timeout_seconds}[hung]
    assert elapsed < budget + SETTINGS.catalog_timeout_seconds


async def test_catalog_down_is_unavailable(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        newcomer = await shop.register()
        order, _, user = upstreams(shop)
        async with recommendation(order, closed_port_target(), user) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await recommend(stub, newcomer.user_id)

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(("user_id", "limit"), [("", 5), ("   ", 5), ("ann", 51), ("ann", -1)])
async def test_bad_requests_are_invalid_argument(user_id: str, limit: int) -> None:
    # Validation comes before any upstream call, so no upstream needs to be running.
    nowhere = closed_port_target()
    async with recommendation(nowhere, nowhere, nowhere) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await recommend(stub, user_id, limit)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_users_recommendations_are_permission_denied() -> None:
    nowhere = closed_port_target()
    async with recommendation(nowhere, nowhere, nowhere) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await recommend(stub, "ann", metadata=(("x-meshmart-user-id", "bob"),))

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
