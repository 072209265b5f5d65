"""CartBook's rules on real SQLite, with a catalog whose prices the test can change."""

from __future__ import annotations

import pytest

from services.cart.domain import CartBook
from services.cart.model import MAX_LINES, Product
from services.cart.store import CartStore
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound


class PriceList:
    """A catalog the test edits: product id -> Product."""

    def __init__(self, *products: Product) -> None:
        self.products = {p.product_id: p for p in products}

    async def __call__(self, product_id: str) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            raise NotFound(f"product_id: product {product_id!r} does not exist") from None


MUG = Product("mug", "Mug", 900, "EUR")


@pytest.fixture
def prices() -> PriceList:
    return PriceList(MUG)


@pytest.fixture
def book(cart_db: Database, prices: PriceList) -> CartBook:
    return CartBook(CartStore(cart_db), prices, currency="EUR")


async def test_a_change_to_a_line_takes_the_catalogs_current_price(
    book: CartBook, prices: PriceList
) -> None:
    await book.add_item("u", "mug", 1)
    prices.products["mug"] = Product("mug", "Mug (new)", 1100, "EUR")

    unchanged = book.get("u")
    updated = await book.update_quantity("u", "mug", 3)

    # Reading the cart does not reprice it; changing the line does.
    assert unchanged.lines[0].unit_price_minor == 900
    assert (updated.lines[0].name, updated.lines[0].unit_price_minor) == ("Mug (new)", 1100)
    assert updated.total_minor == 3300


async def test_a_cart_holds_at_most_fifty_distinct_products(
    book: CartBook, prices: PriceList
) -> None:
    for i in range(MAX_LINES + 1):
        prices.products[f"p{i}"] = Product(f"p{i}", f"P{i}", 100, "EUR")
    for i in range(MAX_LINES):
        await book.add_item("u", f"p{i}", 1)

    with pytest.raises(InvalidArgument) as caught:
        await book.add_item("u", f"p{MAX_LINES}", 1)

    assert caught.value.field == "product_id"
    # More of a product already in the cart is still fine.
    cart = await book.add_item("u", "p0", 1)
    assert len(cart.lines) == MAX_LINES


async def test_a_product_in_another_currency_is_refused(book: CartBook, prices: PriceList) -> None:
    prices.products["dollar-mug"] = Product("dollar-mug", "Mug", 1000, "USD")

    with pytest.raises(FailedPrecondition):
        await book.add_item("u", "dollar-mug", 1)
    assert book.get("u").lines == ()


async def test_update_of_a_product_not_in_the_cart_does_not_ask_the_catalog(
    book: CartBook, prices: PriceList
) -> None:
    prices.products.clear()  # a catalog lookup would now fail differently

    with pytest.raises(NotFound, match="not in the cart"):
        await book.update_quantity("u", "mug", 2)
