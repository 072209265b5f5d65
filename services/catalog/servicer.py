"""CatalogService over gRPC: validate, ask the in-memory Catalog, map to protobuf."""

from __future__ import annotations

from typing import Any

from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from meshmart.common.v1 import common_pb2

from services.catalog.domain import Catalog, Product, ProductPage
from services.kit import validate
from services.kit.server import ServiceSpec

SERVICE_NAME = "meshmart.catalog.v1.CatalogService"


def product_message(product: Product) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        product_id=product.product_id,
        name=product.name,
        description=product.description,
        category=product.category,
        price=common_pb2.Money(amount_minor=product.price_minor, currency=product.currency),
        image_url=product.image_url,
        popularity=product.popularity,
    )


def product_responses(catalog: Catalog) -> dict[str, catalog_pb2.GetProductResponse]:
    """GetProduct's answer for every product, by id (the snapshot never changes)."""
    return {
        product.product_id: catalog_pb2.GetProductResponse(product=product_message(product))
        for product in catalog.products
    }


def _page_size(value: int) -> int:
    # 0..100 is the contract's rule (101+ is an error rather than clamped, unlike AIP-158).
    return validate.page_size(value)


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        # GetProduct is the hot path: answer it with a response built once per product
        # (the snapshot never changes) instead of building protobuf on every call.
        self._product_responses = product_responses(catalog)

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: Any
    ) -> catalog_pb2.GetProductResponse:
        product = self._catalog.get(request.product_id)
        return self._product_responses[product.product_id]

    async def ListProducts(
        self, request: catalog_pb2.ListProductsRequest, context: Any
    ) -> catalog_pb2.ListProductsResponse:
        page_size = _page_size(request.page_size)
        category = request.category.strip().lower()
        page = self._catalog.list_products(
            page_size=page_size, page_token=request.page_token, category=category
        )
        return catalog_pb2.ListProductsResponse(
            products=self._messages(page), next_page_token=page.next_page_token
        )

    async def SearchProducts(
        self, request: catalog_pb2.SearchProductsRequest, context: Any
    ) -> catalog_pb2.SearchProductsResponse:
        query = request.query.strip()
        page_size = _page_size(request.page_size)
        page = self._catalog.search_products(
            query=query, page_size=page_size, page_token=request.page_token
        )
        return catalog_pb2.SearchProductsResponse(
            products=self._messages(page), next_page_token=page.next_page_token
        )

    def _messages(self, page: ProductPage) -> list[catalog_pb2.Product]:
        return [self._product_responses[p.product_id].product for p in page.products]


def service_spec(servicer: CatalogServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server),
    )
