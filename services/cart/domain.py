"""Cart rules, free of gRPC: quantities, one currency, prices from the catalog."""

from __future__ import annotations

from typing import Protocol

from services.kit.errors import FailedPrecondition

from .model import Cart, CartLine, Product
from .store import CartStore, not_in_cart


class ProductLookup(Protocol):
    """Finds a product's current name and price (the catalog service, in production).

    Raises NotFound for an unknown product and Unavailable when the catalog cannot answer.
    """

    async def __call__(self, product_id: str) -> Product: ...


class CartBook:
    """Every user's cart. Callers validate ids and quantities (1..99) first.

    A line takes the catalog's name and price whenever it changes (AddItem,
    UpdateQuantity): the cart shows what the shop charges now, and order reads it.
    The catalog is asked before the write transaction opens, never inside it, so a
    slow catalog never holds the database's write lock. The sync methods run where the
    caller runs them (``db.run`` in the servicer); the async ones run their store calls
    through ``db.run`` between the catalog's answers.
    """

    def __init__(self, store: CartStore, products: ProductLookup, currency: str) -> None:
        self.db = store.db
        self._store = store
        self._products = products
        self._currency = currency

    def get(self, user_id: str) -> Cart:
        return self._cart(user_id, self._store.lines(user_id))

    async def add_item(self, user_id: str, product_id: str, quantity: int) -> Cart:
        """Add `quantity` units; an existing line's quantity grows (up to 99)."""
        product = await self._current(product_id)
        return self._cart(user_id, await self.db.run(self._store.add, user_id, product, quantity))

    async def update_quantity(self, user_id: str, product_id: str, quantity: int) -> Cart:
        """Set the quantity of a line already in the cart."""
        # Checked first so that a product missing from the cart is NOT_FOUND even while
        # the catalog is down; the store checks again under its write lock.
        if not await self.db.run(self._store.has_line, user_id, product_id):
            raise not_in_cart(user_id, product_id)
        product = await self._current(product_id)
        lines = await self.db.run(self._store.set_quantity, user_id, product, quantity)
        return self._cart(user_id, lines)

    def remove_item(self, user_id: str, product_id: str) -> Cart:
        """Idempotent: removing a product that is not in the cart returns the cart as is,
        so a retried RemoveItem whose first answer was lost does not fail."""
        return self._cart(user_id, self._store.remove(user_id, product_id))

    def clear(self, user_id: str) -> Cart:
        self._store.clear(user_id)
        return self._cart(user_id, ())

    async def _current(self, product_id: str) -> Product:
        product = await self._products(product_id)
        if product.currency != self._currency:
            # Totals are sums in one currency; mixing would need exchange rates.
            raise FailedPrecondition(
                f"product {product_id!r} is priced in {product.currency!r};"
                f" the cart only holds {self._currency!r} prices"
            )
        return product

    def _cart(self, user_id: str, lines: tuple[CartLine, ...]) -> Cart:
        return Cart(user_id=user_id, lines=lines, currency=self._currency)
