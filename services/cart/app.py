"""Wiring of the cart service: a channel to catalog (MESHMART_UPSTREAM_CATALOG), its
database -> CartBook -> servicer."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import cast

from meshmart.catalog.v1 import catalog_pb2_grpc

from services.kit.clients import connect
from services.kit.config import ServiceConfig
from services.kit.db import open_database
from services.kit.server import Service, opened

from .catalog_client import CatalogProducts
from .domain import CartBook
from .servicer import CartServicer, service_spec
from .settings import CartSettings, load_settings
from .store import MIGRATIONS, CartStore


def build(
    config: ServiceConfig, stack: AsyncExitStack, settings: CartSettings | None = None
) -> Service:
    settings = settings or load_settings()
    # Closed after the drain: in-flight AddItems no longer need the channel.
    catalog_channel = opened(stack, connect(config, "catalog"))
    db = opened(stack, open_database(config, "cart.sqlite3", MIGRATIONS))
    # grpc is untyped, so mypy cannot pick the stub's aio overload by itself.
    stub = cast(
        "catalog_pb2_grpc.CatalogServiceAsyncStub",
        catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
    )
    products = CatalogProducts(stub, timeout_seconds=settings.catalog_timeout_seconds)
    book = CartBook(CartStore(db), products, settings.currency)
    return Service(specs=[service_spec(CartServicer(book))])
