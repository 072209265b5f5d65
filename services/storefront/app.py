"""Wiring: one channel per upstream -> DashboardBuilder -> servicer."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import cast

import grpc
from meshmart.catalog.v1 import catalog_pb2_grpc
from meshmart.order.v1 import order_pb2_grpc
from meshmart.payment.v1 import payment_pb2_grpc
from meshmart.recommendation.v1 import recommendation_pb2_grpc
from meshmart.storefront.v1 import storefront_pb2_grpc
from meshmart.user.v1 import user_pb2_grpc

from services.kit.clients import connect
from services.kit.config import ServiceConfig
from services.kit.server import Service, ServiceSpec, opened
from services.storefront.dashboard import DashboardBuilder, Timeouts, Upstreams
from services.storefront.servicer import StorefrontServicer
from services.storefront.settings import load_settings

SERVICE_NAME = "meshmart.storefront.v1.StorefrontService"
UPSTREAMS = ("user", "order", "payment", "recommendation", "catalog")


def _spec(channels: Mapping[str, grpc.aio.Channel], timeouts: Timeouts) -> ServiceSpec:
    # grpc ships no type hints, so mypy cannot pick the stubs' aio overload by itself;
    # the AsyncStub classes exist only in the .pyi, hence the quoted names.
    upstreams = Upstreams(
        user=cast(
            "user_pb2_grpc.UserServiceAsyncStub", user_pb2_grpc.UserServiceStub(channels["user"])
        ),
        order=cast(
            "order_pb2_grpc.OrderServiceAsyncStub",
            order_pb2_grpc.OrderServiceStub(channels["order"]),
        ),
        payment=cast(
            "payment_pb2_grpc.PaymentServiceAsyncStub",
            payment_pb2_grpc.PaymentServiceStub(channels["payment"]),
        ),
        recommendation=cast(
            "recommendation_pb2_grpc.RecommendationServiceAsyncStub",
            recommendation_pb2_grpc.RecommendationServiceStub(channels["recommendation"]),
        ),
        catalog=cast(
            "catalog_pb2_grpc.CatalogServiceAsyncStub",
            catalog_pb2_grpc.CatalogServiceStub(channels["catalog"]),
        ),
    )
    servicer = StorefrontServicer(DashboardBuilder(upstreams, timeouts))
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: storefront_pb2_grpc.add_StorefrontServiceServicer_to_server(
            servicer, server
        ),
    )


def build(
    config: ServiceConfig, stack: AsyncExitStack, timeouts: Timeouts | None = None
) -> Service:
    timeouts = timeouts or load_settings()
    # Closed only after the drain: in-flight RPCs use the channels until then.
    channels = {name: opened(stack, connect(config, name)) for name in UPSTREAMS}
    return Service(specs=[_spec(channels, timeouts)])
