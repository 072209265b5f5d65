"""The cart's view of the catalog: one GetProduct per change, with a deadline.

Translates the catalog's status codes into the cart's own errors, so that a caller of
AddItem learns what went wrong in cart terms (the product does not exist; the catalog
cannot be reached right now) instead of seeing the catalog's raw status.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.kit.errors import InvalidArgument, NotFound, Unavailable
from services.kit.logging import get_logger

from .model import Product

log = get_logger("cart.catalog")

DEFAULT_TIMEOUT_SECONDS = 1.0

_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class CatalogProducts:
    """ProductLookup backed by catalog.v1.CatalogService.GetProduct."""

    def __init__(
        self,
        stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._stub = stub
        self._timeout_seconds = timeout_seconds

    async def __call__(self, product_id: str) -> Product:
        try:
            response = await self._stub.GetProduct(
                catalog_pb2.GetProductRequest(product_id=product_id), timeout=self._timeout_seconds
            )
        except grpc.aio.AioRpcError as error:
            translated = _translate(error, product_id)
            if translated is None:
                raise
            raise translated from error
        product = response.product
        return Product(
            product_id=product.product_id,
            name=product.name,
            unit_price_minor=product.price.amount_minor,
            currency=product.price.currency,
        )


def _translate(error: grpc.aio.AioRpcError, product_id: str) -> Exception | None:
    code = error.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(
            f"product_id: product {product_id!r} does not exist in the catalog",
            details=[
                error_details_pb2.ResourceInfo(
                    resource_type="meshmart.catalog.v1.Product",
                    resource_name=product_id,
                    description="not in the catalog",
                )
            ],
        )
    if code in _TRANSIENT:
        # The details go to our log only: they name internal addresses.
        log.warning("catalog.unavailable", code=code.name, details=error.details())
        return Unavailable(
            f"catalog is unavailable ({code.name}); the cart was not changed, retry later"
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument("product_id", error.details() or "rejected by the catalog")
    # Anything else (PERMISSION_DENIED from the mesh, INTERNAL) is a fault on our side of
    # the contract: left as is, the interceptor reports INTERNAL and logs the cause.
    return None
