"""Storefront on top of the real in-process shop (harness/shop.py), with a real
recommendation server between them that a test can stop on its own.

`overrides` replaces an upstream's target for storefront only (e.g. with a black hole),
so one dependency can misbehave while the rest of the shop, recommendation included,
keeps talking to the real services; `recommendation_overrides` does the same for
recommendation's own upstreams (order, catalog, user).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import grpc
from meshmart.storefront.v1 import storefront_pb2, storefront_pb2_grpc

from harness.shop import Shop
from services.kit.testing import config_for_tests, running_service
from services.recommendation import app as recommendation_app
from services.recommendation.settings import RecommendationSettings
from services.storefront import app as storefront_app
from services.storefront.dashboard import Timeouts

CALL_TIMEOUT = 10.0
# Generous next to in-process latency (CI boxes are loaded), small next to the hangs the
# tests inject; recommendation's own budget (0.5 + 0.8 s, its user lookup of 0.4 s beside
# the order read) fits inside its 1.5 s.
TIMEOUTS = Timeouts(
    user_seconds=1.0,
    order_seconds=1.0,
    payment_seconds=1.0,
    recommendation_seconds=1.5,
    catalog_seconds=1.0,
)
RECOMMENDATION_SETTINGS = RecommendationSettings(
    order_timeout_seconds=0.5,
    catalog_timeout_seconds=0.8,
    user_timeout_seconds=0.4,
    model_ttl_seconds=0.0,
)


@dataclass
class Storefront:
    stub: storefront_pb2_grpc.StorefrontServiceAsyncStub
    recommendation: AsyncExitStack  # aclose() stops the recommendation server

    async def dashboard(
        self, user_id: str, metadata: tuple[tuple[str, str], ...] = ()
    ) -> storefront_pb2.GetDashboardResponse:
        response: storefront_pb2.GetDashboardResponse = await self.stub.GetDashboard(
            storefront_pb2.GetDashboardRequest(user_id=user_id),
            timeout=CALL_TIMEOUT,
            metadata=metadata,
        )
        return response


@asynccontextmanager
async def running_storefront(
    shop: Shop,
    *,
    overrides: Mapping[str, str] | None = None,
    recommendation_overrides: Mapping[str, str] | None = None,
    timeouts: Timeouts = TIMEOUTS,
) -> AsyncIterator[Storefront]:
    async with AsyncExitStack() as stack:

        upstreams = {**shop.targets, **(recommendation_overrides or {})}
        recommendation = AsyncExitStack()
        stack.push_async_callback(recommendation.aclose)
        recommendation_target = await recommendation.enter_async_context(
            running_service(
                config_for_tests("recommendation", upstreams=upstreams),
                partial(recommendation_app.build, settings=RECOMMENDATION_SETTINGS),
            )
        )
        targets = {**shop.targets, "recommendation": recommendation_target, **(overrides or {})}
        storefront_target = await stack.enter_async_context(
            running_service(
                config_for_tests("storefront", upstreams=targets),
                partial(storefront_app.build, timeouts=timeouts),
            )
        )
        client = await stack.enter_async_context(grpc.aio.insecure_channel(storefront_target))
        yield Storefront(
            stub=storefront_pb2_grpc.StorefrontServiceStub(client),  # type: ignore[arg-type]
            recommendation=recommendation,
        )
