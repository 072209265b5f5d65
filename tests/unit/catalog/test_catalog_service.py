"""CatalogService over real gRPC, backed by a real SQLite file in tmp_path, and again by
a PostgreSQL database of the session cluster."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import cast

import grpc
import pytest
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from harness.postgres import Databases
from services.catalog.seed import SEED_PRODUCTS
from services.catalog.servicer import CatalogServicer, service_spec
from services.catalog.store import DB_FILE, MIGRATIONS, ProductStore, load_catalog
from services.kit.db import Database
from services.kit.testing import running_server
from tests.unit.bad_request import violated_fields

TIMEOUT = 5.0


@pytest.fixture
async def stub(databases: Databases) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceAsyncStub]:
    db = Database(databases.target("catalog", DB_FILE), MIGRATIONS)
    catalog, _ = load_catalog(db)
    try:
        async with (
            running_server([service_spec(CatalogServicer(catalog))]) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            yield cast(
                "catalog_pb2_grpc.CatalogServiceAsyncStub",
                catalog_pb2_grpc.CatalogServiceStub(channel),
            )
    finally:
        db.close()


def test_seed_is_idempotent_and_realistic(databases: Databases) -> None:
    db = Database(databases.target("catalog", DB_FILE), MIGRATIONS)
    store = ProductStore(db)
    assert store.seed(SEED_PRODUCTS) == len(SEED_PRODUCTS)
    assert store.seed(SEED_PRODUCTS) == 0
    products = store.load_all()
    assert len(products) >= 40
    assert len({p.category for p in products}) >= 5
    assert all(p.currency == "EUR" and p.price_minor > 0 for p in products)
    db.close()


async def test_get_product_returns_the_seeded_product(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    seeded = SEED_PRODUCTS[0]
    response = await stub.GetProduct(
        catalog_pb2.GetProductRequest(product_id=seeded.product_id), timeout=TIMEOUT
    )
    product = response.product
    assert (product.product_id, product.name, product.category) == (
        seeded.product_id,
        seeded.name,
        seeded.category,
    )
    assert (product.price.amount_minor, product.price.currency) == (seeded.price_minor, "EUR")
    # The shop's own picture of the category, served by the edge (web/public/images).
    assert product.image_url == f"/images/{seeded.category}.svg"


async def test_get_unknown_product_is_not_found(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetProduct(catalog_pb2.GetProductRequest(product_id="sku-9999"), timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert "sku-9999" in (caught.value.details() or "")


async def test_get_product_without_id_is_invalid(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetProduct(catalog_pb2.GetProductRequest(), timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["product_id"]


async def test_paging_walks_every_product_exactly_once(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        response = await stub.ListProducts(
            catalog_pb2.ListProductsRequest(page_size=7, page_token=token), timeout=TIMEOUT
        )
        pages += 1
        assert len(response.products) <= 7
        seen.extend(p.product_id for p in response.products)
        token = response.next_page_token
        if not token:
            break
    expected = sorted(p.product_id for p in SEED_PRODUCTS)
    assert seen == expected  # every product, once, in product_id order
    assert pages == -(-len(expected) // 7)


async def test_default_page_size_is_20(stub: catalog_pb2_grpc.CatalogServiceAsyncStub) -> None:
    response = await stub.ListProducts(catalog_pb2.ListProductsRequest(), timeout=TIMEOUT)
    assert len(response.products) == 20
    assert response.next_page_token


async def test_category_filter_returns_only_that_category_across_pages(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    per_category = Counter(p.category for p in SEED_PRODUCTS)
    seen: list[catalog_pb2.Product] = []
    token = ""
    while True:
        response = await stub.ListProducts(
            catalog_pb2.ListProductsRequest(page_size=3, page_token=token, category="Books"),
            timeout=TIMEOUT,
        )
        seen.extend(response.products)
        token = response.next_page_token
        if not token:
            break
    assert {p.category for p in seen} == {"books"}
    assert len(seen) == per_category["books"]
    assert len({p.product_id for p in seen}) == len(seen)


async def test_unknown_category_is_an_empty_page(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    response = await stub.ListProducts(
        catalog_pb2.ListProductsRequest(category="spaceships"), timeout=TIMEOUT
    )
    assert list(response.products) == []
    assert response.next_page_token == ""


@pytest.mark.parametrize("token", ["not-a-token", "eyJ2IjoyfQ", "%%%", "e30"])
async def test_bad_page_token_is_invalid_argument_naming_page_token(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub, token: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListProducts(catalog_pb2.ListProductsRequest(page_token=token), timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["page_token"]


async def test_page_token_of_another_category_is_refused(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    first = await stub.ListProducts(
        catalog_pb2.ListProductsRequest(page_size=2, category="coffee"), timeout=TIMEOUT
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListProducts(
            catalog_pb2.ListProductsRequest(
                page_size=2, category="audio", page_token=first.next_page_token
            ),
            timeout=TIMEOUT,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["page_token"]


@pytest.mark.parametrize("page_size", [-1, 101])
async def test_page_size_outside_0_to_100_is_invalid(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub, page_size: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListProducts(
            catalog_pb2.ListProductsRequest(page_size=page_size), timeout=TIMEOUT
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["page_size"]


async def _search_ids(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub, query: str, page_size: int = 100
) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        response = await stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(query=query, page_size=page_size, page_token=token),
            timeout=TIMEOUT,
        )
        ids.extend(p.product_id for p in response.products)
        token = response.next_page_token
        if not token:
            return ids


async def test_search_is_case_insensitive(stub: catalog_pb2_grpc.CatalogServiceAsyncStub) -> None:
    lower = await _search_ids(stub, "yirgacheffe")
    assert lower == ["sku-1001"]
    assert await _search_ids(stub, "YIRGACHEFFE") == lower
    assert await _search_ids(stub, "YirgaCheffe") == lower


async def test_search_matches_name_description_and_category(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    # "kettle" is in two names; "bergamot" only in descriptions; "AUDIO" is a category.
    assert set(await _search_ids(stub, "kettle")) == {"sku-1016", "sku-1019"}
    assert "sku-1011" in await _search_ids(stub, "bergamot")
    audio = {p.product_id for p in SEED_PRODUCTS if p.category == "audio"}
    assert audio <= set(await _search_ids(stub, "AUDIO"))


async def test_search_ranks_name_matches_first(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    ids = await _search_ids(stub, "coffee")
    in_name = [p.product_id for p in SEED_PRODUCTS if "coffee" in p.name.lower()]
    assert set(ids[: len(in_name)]) == set(in_name)
    assert len(ids) > len(in_name)  # category and description matches follow


async def test_search_paging_returns_the_same_hits_as_one_page(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    assert await _search_ids(stub, "coffee", page_size=3) == await _search_ids(stub, "coffee")


async def test_search_with_a_token_of_another_query_is_refused(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> None:
    first = await stub.SearchProducts(
        catalog_pb2.SearchProductsRequest(query="coffee", page_size=1), timeout=TIMEOUT
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(
                query="tea", page_size=1, page_token=first.next_page_token
            ),
            timeout=TIMEOUT,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["page_token"]


@pytest.mark.parametrize("query", ["", "   ", "x" * 201])
async def test_search_query_must_be_1_to_200_characters(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub, query: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SearchProducts(catalog_pb2.SearchProductsRequest(query=query), timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["query"]
