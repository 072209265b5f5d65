"""A bare grpc.aio server of CatalogService/GetProduct: the baseline of bench/catalog_cpu.py.

What the kit's catalog process would cost with nothing of the kit on the call path: no
interceptor (request scope, validation, error mapping, access log, RED metrics), no
OpenTelemetry, no health or reflection. It answers the same GetProductResponse messages,
built once at start as CatalogServicer builds them (catalog's seed, loaded into a
database in MESHMART_DATA_DIR), on MESHMART_HOST / MESHMART_PORT.
Run by bench/catalog_cpu.py's +bare variants (and by hand:
``PYTHONPATH=.:gen/python python bench/bare_catalog.py``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import grpc
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.catalog.servicer import product_responses
from services.catalog.store import DB_FILE, MIGRATIONS, load_catalog
from services.kit.db import Database


class BareCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, db: Database) -> None:
        catalog, _ = load_catalog(db)
        self._responses = product_responses(catalog)

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: Any
    ) -> catalog_pb2.GetProductResponse:
        if (response := self._responses.get(request.product_id)) is not None:
            return response
        await context.abort(grpc.StatusCode.NOT_FOUND, f"product {request.product_id!r}")
        raise AssertionError("context.abort raises")


async def serve() -> None:
    db = Database(Path(os.environ["MESHMART_DATA_DIR"]) / DB_FILE, MIGRATIONS)
    server = grpc.aio.server()
    # GetProduct only: the generated base class answers the other methods UNIMPLEMENTED.
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(
        BareCatalog(db), server)  # type: ignore[abstract]
    server.add_insecure_port(f"{os.environ['MESHMART_HOST']}:{os.environ['MESHMART_PORT']}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve())
