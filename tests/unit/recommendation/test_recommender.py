"""The Recommender's own rules, with plain-Python ports: when the history is read (once per
TTL, once for concurrent requests) and what happens when it cannot be read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from meshmart.catalog.v1 import catalog_pb2

from services.recommendation.domain import HistoryUnavailable, Recommender, Source
from services.recommendation.model import PastOrder

PRODUCTS = {
    f"sku-{n}": catalog_pb2.Product(product_id=f"sku-{n}", popularity=100 - n) for n in range(10)
}


class History:
    def __init__(self, orders: list[PastOrder]) -> None:
        self.orders = orders
        self.reads = 0
        self.failing = False
        self.release = asyncio.Event()
        self.release.set()

    async def recent_orders(self) -> Sequence[PastOrder]:
        self.reads += 1
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
    recommender = Recommender(history, Catalog(), model_ttl=30.0, clock=clock)

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
    recommender = Recommender(history, Catalog(), model_ttl=30.0)

    pending = [asyncio.create_task(recommender.recommend("bob", 2)) for _ in range(5)]
    await asyncio.sleep(0)  # let every request reach the history read
    history.release.set()
    results = await asyncio.gather(*pending)

    assert history.reads == 1
    assert all(r.source == Source.POPULAR for r in results)


async def test_an_unavailable_history_gives_catalog_popularity_and_is_retried() -> None:
    history = History([bought("bob", "sku-5", "sku-6")])
    history.failing = True
    recommender = Recommender(history, Catalog(), model_ttl=30.0)

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
    recommender = Recommender(history, Catalog(), model_ttl=30.0)

    impatient = asyncio.create_task(recommender.recommend("bob", 2))
    patient = asyncio.create_task(recommender.recommend("ann", 2))
    await asyncio.sleep(0)
    impatient.cancel()
    history.release.set()
    result = await patient

    assert history.reads == 1
    assert ids(result.products) == ["sku-5", "sku-6"]
