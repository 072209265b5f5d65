"""Wiring: channels to order, catalog and user -> Recommender -> servicer."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import cast

import grpc
from meshmart.catalog.v1 import catalog_pb2_grpc
from meshmart.order.v1 import order_pb2_grpc
from meshmart.recommendation.v1 import recommendation_pb2_grpc
from meshmart.user.v1 import user_pb2_grpc

from services.kit.clients import connect
from services.kit.config import ServiceConfig, env_str
from services.kit.server import Service, ServiceSpec, opened
from services.recommendation.domain import Recommender
from services.recommendation.servicer import RecommendationServicer
from services.recommendation.settings import RecommendationSettings, load_settings
from services.recommendation.upstreams import (
    GrpcOrderHistory,
    GrpcProductCatalog,
    GrpcUserDirectory,
)

SERVICE_NAME = "meshmart.recommendation.v1.RecommendationService"


def _spec(
    order_channel: grpc.aio.Channel,
    catalog_channel: grpc.aio.Channel,
    user_channel: grpc.aio.Channel,
    settings: RecommendationSettings,
    *,
    version: str = "dev",
) -> ServiceSpec:
    # grpc ships no type hints, so mypy cannot pick the stubs' aio overload by itself;
    # the AsyncStub classes exist only in the .pyi, hence the quoted names.
    order = cast(
        "order_pb2_grpc.OrderServiceAsyncStub", order_pb2_grpc.OrderServiceStub(order_channel)
    )
    catalog = cast(
        "catalog_pb2_grpc.CatalogServiceAsyncStub",
        catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
    )
    users = cast("user_pb2_grpc.UserServiceAsyncStub", user_pb2_grpc.UserServiceStub(user_channel))
    recommender = Recommender(
        GrpcOrderHistory(
            order,
            timeout_seconds=settings.order_timeout_seconds,
            max_orders=settings.history_orders,
        ),
        GrpcProductCatalog(
            catalog,
            timeout_seconds=settings.catalog_timeout_seconds,
            max_products=settings.catalog_products,
        ),
        GrpcUserDirectory(users, timeout_seconds=settings.user_timeout_seconds),
        model_ttl_seconds=settings.model_ttl_seconds,
    )
    servicer = RecommendationServicer(recommender, version)
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server(
            servicer, server
        ),
    )


def build(
    config: ServiceConfig,
    stack: AsyncExitStack,
    settings: RecommendationSettings | None = None,
) -> Service:
    settings = settings or load_settings()
    # The release label the mesh registers (meta.version, the canary's subset), echoed in
    # every answer's x-meshmart-version header.
    version = env_str("MESHMART_SERVICE_VERSION", "dev")
    # Closed only after the drain: in-flight RPCs use the channels until then.
    channels = {
        name: opened(stack, connect(config, name)) for name in ("order", "catalog", "user")
    }
    spec = _spec(
        channels["order"], channels["catalog"], channels["user"], settings, version=version
    )
    return Service(specs=[spec])
