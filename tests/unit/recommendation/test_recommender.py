"""The Recommender's own rules, with plain-Python ports: when the history is read (once per
TTL, once for concurrent requests), what happens when it cannot be read, and what the user
lookup decides. The same cases as v2's internal/recommend/recommender_test.go."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from meshmart.catalog.v1 import catalog_pb2

from services.kit.errors import NotFound
from services.recommendation.domain import (
    DirectoryUnavailable,
    HistoryUnavailable,
    Recommender,
    Source,
)
from services.recommendation.model import PastOrder

PRODUCTS = {
    f"sku-{n}": catalog_pb2.Product(product_id=f"sku-{n}", popularity=100 - n) for n in range(10)
}


class History:
    def __init__(self, orders: list[PastOrder]) -> None:
        self.orders = orders
        self.reads = 0
        self.failing = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def recent_orders(self) -> Sequence[PastOrder]:
        self.reads += 1
        self.entered.set()
        await self.release.wait()
        if self.failing:
            raise HistoryUnavailable("order is down")
        return list(self.orders)


class Catalog:
    async def products(self, product_ids: Sequence[str]) -> list[catalog_pb2.Product]:
        return [PRODUCTS[p] for p in product_ids if p in PRODUCTS]

    async def most_popular(self, limit: int, exclude: frozenset[str]) -> list[catalog_pb2.Product]:
        ranked = sorted(PRODUCTS.values(), key=lambda p: -p.popularity)
        return [p for p in ranked if p.product_id not in exclude][:limit]


class Directory:
    """Knows the users in ``known`` (everyone when None); ``failing``: cannot tell;
    ``wait_for``: each lookup first waits for that event."""

    def __init__(
        self,
        known: set[str] | None = None,
        *,
        failing: bool = False,
        wait_for: asyncio.Event | None = None,
    ) -> None:
        self.known = known
        self.failing = failing
        self.wait_for = wait_for

    async def exists(self, user_id: str) -> bool:
        if self.wait_for is not None:
            await self.wait_for.wait()
        if self.failing:
            raise DirectoryUnavailable("user is down")
        return self.known is None or user_id in self.known


EVERYONE = Directory()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bought(user_id: str, *product_ids: str) -> PastOrder:
    return PastOrder(user_id, tuple((p, 1) for p in product_ids))


def ids(products: Sequence[catalog_pb2.Product]) -> list[str]:
    return [p.product_id for p in products]


async def test_the_history_is_read_once_per_ttl() -> None:
    history, clock = History([bought("bob", "sku-5", "sku-6")]), Clock()
    recommender = Recommender(history, Catalog(), EVERYONE, model_ttl_seconds=30.0, clock=clock)

    await recommender.recommend("ann", 3)
    history.orders.append(bought("ann", "sku-5"))
    clock.now += 29.0
    cached = await recommender.recommend("ann", 3)
    clock.now += 2.0
    fresh = await recommender.recommend("ann", 3)

    assert history.reads == 2
    assert cached.source == Source.POPULAR  # ann's order is not in the cached model
    assert fresh.source == Source.PERSONALIZED
    assert ids(fresh.products)[0] == "sku-6"


async def test_concurrent_requests_share_one_history_read() -> None:
    history = History([bought("bob", "sku-5", "sku-6")])
    history.release.clear()
    recommender = Recommender(history, Catalog(), EVERYONE, model_ttl_seconds=30.0)

    pending = [asyncio.create_task(recommender.recommend("bob", 2)) for _ in range(5)]
    await asyncio.sleep(0)  # let every request reach the history read
    history.release.set()
    results = await asyncio.gather(*pending)

    assert history.reads == 1
    assert all(r.source == Source.POPULAR for r in results)


async def test_an_unavailable_history_gives_catalog_popularity_and_is_retried() -> None:
    history = History([bought("bob", "sku-5", "sku-6")])
    history.failing = True
    recommender = Recommender(history, Catalog(), EVERYONE, model_ttl_seconds=30.0)

    fallback = await recommender.recommend("bob", 3)
    history.failing = False
    recovered = await recommender.recommend("ann", 3)

    assert fallback.source == Source.POPULAR
    assert ids(fallback.products) == ["sku-0", "sku-1", "sku-2"]
    # A failed read is not cached: the next request reads the history again.
    assert history.reads == 2
    assert ids(recovered.products)[:2] == ["sku-5", "sku-6"]


async def test_a_cancelled_caller_does_not_cancel_the_shared_read() -> None:
    history = History([bought("bob", "sku-5", "sku-6")])
    history.release.clear()
    recommender = Recommender(history, Catalog(), EVERYONE, model_ttl_seconds=30.0)

    impatient = asyncio.create_task(recommender.recommend("bob", 2))
    patient = asyncio.create_task(recommender.recommend("ann", 2))
    await asyncio.sleep(0)
    impatient.cancel()
    history.release.set()
    result = await patient

    assert history.reads == 1
    assert ids(result.products) == ["sku-5", "sku-6"]


async def test_an_unknown_user_is_not_found_naming_the_user() -> None:
    history = History([bought("bob", "sku-5", "sku-6")])
    recommender = Recommender(history, Catalog(), Directory({"bob"}), model_ttl_seconds=0.0)

    with pytest.raises(NotFound) as raised:
        await recommender.recommend("usr-nobody", 3)
    known = await recommender.recommend("bob", 3)

    assert raised.value.message == "user usr-nobody not found"
    assert len(known.products) == 3


async def test_a_user_lookup_that_fails_does_not_fail_the_recommendation() -> None:
    history = History([bought("bob", "sku-5", "sku-6"), bought("ann", "sku-5")])
    recommender = Recommender(history, Catalog(), Directory(failing=True), model_ttl_seconds=0.0)

    result = await recommender.recommend("ann", 2)

    # The answer it would have been with the user known: the lookup only turns users away.
    assert result.source == Source.PERSONALIZED
    assert ids(result.products) == ["sku-6", "sku-0"]


async def test_the_user_lookup_runs_beside_the_history_read() -> None:
    history = History([bought("bob", "sku-5", "sku-6")])
    # The lookup answers only once the history read has started: one after the other
    # (lookup first) would never finish.
    recommender = Recommender(
        history, Catalog(), Directory(wait_for=history.entered), model_ttl_seconds=0.0
    )

    async with asyncio.timeout(5):
        result = await recommender.recommend("bob", 2)

    assert len(result.products) == 2
