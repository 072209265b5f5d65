"""`python -m services.cart`: serve CartService (needs MESHMART_UPSTREAM_CATALOG)."""

from __future__ import annotations

from typing import cast

from meshmart.catalog.v1 import catalog_pb2_grpc

from services.kit.clients import connect
from services.kit.config import load_config
from services.kit.db import Database
from services.kit.server import run, serve

from .catalog_client import CatalogProducts
from .domain import CartBook
from .servicer import CartServicer, service_spec
from .settings import load_cart_settings
from .store import MIGRATIONS, CartStore


async def main() -> None:
    config = load_config("cart")
    settings = load_cart_settings()
    catalog_channel = connect(config, "catalog")
    db = Database(config.data_dir / "cart.sqlite3", MIGRATIONS)
    try:
        # grpc is untyped, so mypy cannot pick the stub's aio overload by itself.
        stub = cast(
            "catalog_pb2_grpc.CatalogServiceAsyncStub",
            catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
        )
        products = CatalogProducts(
            stub,
            timeout=settings.catalog_timeout_seconds,
        )
        book = CartBook(CartStore(db), products, settings.currency)
        await serve(config, [service_spec(CartServicer(book))])
    finally:
        # After serve() returns: in-flight AddItems drained, nobody needs the channel.
        await catalog_channel.close()
        db.close()


if __name__ == "__main__":
    run(main)
