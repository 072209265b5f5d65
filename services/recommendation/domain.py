"""Recommend: bought-together products from recent orders, else popular products; NOT_FOUND
for a user the user service does not know.

The recommender talks to three ports (`OrderHistory`, `ProductCatalog`, `UserDirectory`)
so the ranking, fallback and lookup rules are testable without gRPC; `upstreams.py`
implements them over gRPC.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from meshmart.catalog.v1 import catalog_pb2

from services.kit.errors import NotFound
from services.kit.logging import get_logger
from services.recommendation.model import CoOccurrenceModel, PastOrder, merge_unique

log = get_logger(__name__)


class HistoryUnavailable(Exception):
    """The purchase history could not be read (order down, slow or failing)."""


class DirectoryUnavailable(Exception):
    """The user service could not say whether a user exists (down, slow or failing)."""


class Source(enum.Enum):
    PERSONALIZED = "personalized"
    POPULAR = "popular"


@dataclass(frozen=True)
class Recommendation:
    products: list[catalog_pb2.Product]
    source: Source


class OrderHistory(Protocol):
    async def recent_orders(self) -> Sequence[PastOrder]:
        """Recent confirmed orders of all users; raises HistoryUnavailable."""


class ProductCatalog(Protocol):
    async def products(self, product_ids: Sequence[str]) -> list[catalog_pb2.Product]:
        """The products in the given order; ids the catalog does not know are dropped."""

    async def most_popular(self, limit: int, exclude: frozenset[str]) -> list[catalog_pb2.Product]:
        """Up to `limit` products by the catalog's popularity field, skipping `exclude`."""


class UserDirectory(Protocol):
    async def exists(self, user_id: str) -> bool:
        """Whether the user service knows the user; raises DirectoryUnavailable."""


class Recommender:
    """Ranks with a co-occurrence model rebuilt from the order history at most every
    `model_ttl_seconds` seconds.

    Why cache: building the model reads hundreds of orders (several ListRecentOrders pages)
    while it changes slowly; re-reading it per request would make order's load grow with
    dashboard traffic. The cost is that an order shows up in recommendations up to
    `model_ttl_seconds` seconds late. Only successful builds are cached: when order fails we fall
    back to popular products rather than serve a model of unknown age.

    The user lookup only turns away users the user service says do not exist: when it
    cannot tell (down, slow), recommendations are a non-critical feature and go on
    without it rather than fail the dashboard that shows them.
    """

    def __init__(
        self,
        history: OrderHistory,
        catalog: ProductCatalog,
        users: UserDirectory,
        *,
        model_ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._history = history
        self._catalog = catalog
        self._users = users
        self._model_ttl = model_ttl_seconds
        self._clock = clock
        self._model: CoOccurrenceModel | None = None
        self._built_at = 0.0
        self._refresh: asyncio.Task[CoOccurrenceModel | None] | None = None

    async def recommend(self, user_id: str, limit: int) -> Recommendation:
        # Side by side: the lookup adds no time to a model rebuild, and neither raises.
        unknown, model = await asyncio.gather(self._is_unknown(user_id), self._current_model())
        if unknown:
            raise NotFound(f"user {user_id} not found")
        if model is None or model.order_count == 0:
            # No history at all: the catalog's own popularity is the best signal there is.
            return Recommendation(
                await self._catalog.most_popular(limit, frozenset()), Source.POPULAR
            )
        bought = model.bought_by(user_id)
        together = model.bought_together(user_id, limit)
        popular = model.most_ordered(limit, exclude=bought)
        # Personalized picks first; popular ones fill the list up to `limit`.
        products = await self._catalog.products(merge_unique(together, popular, limit=limit))
        if len(products) < limit:
            # Few orders so far: pad with catalog popularity so the list is never short.
            seen = bought | {p.product_id for p in products}
            products += await self._catalog.most_popular(limit - len(products), seen)
        source = Source.PERSONALIZED if together else Source.POPULAR
        return Recommendation(products[:limit], source)

    async def _is_unknown(self, user_id: str) -> bool:
        try:
            return not await self._users.exists(user_id)
        except DirectoryUnavailable as exc:
            log.warning("user lookup failed, recommending without it", error=str(exc))
            return False

    async def _current_model(self) -> CoOccurrenceModel | None:
        if self._model is not None and self._clock() - self._built_at < self._model_ttl:
            return self._model
        if self._refresh is None:
            self._refresh = asyncio.create_task(self._rebuild())
        refresh = self._refresh
        # Concurrent requests share one rebuild (one read of the history, one timeout when
        # order is down); shield so one caller's cancellation does not cancel it for all.
        return await asyncio.shield(refresh)

    async def _rebuild(self) -> CoOccurrenceModel | None:
        try:
            orders = await self._history.recent_orders()
        except HistoryUnavailable as exc:
            log.warning("order history unavailable, recommending popular products", error=str(exc))
            return None
        finally:
            self._refresh = None
        model = CoOccurrenceModel(orders)
        self._model, self._built_at = model, self._clock()
        return model
