"""A user's cart as the cart service's own code sees it (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_QUANTITY = 99
MAX_LINES = 50
"""Distinct products per cart: bounds the size of a cart, its rows and its responses."""


@dataclass(frozen=True)
class Product:
    """What the cart needs to know about a product, as the catalog says it is now."""

    product_id: str
    name: str
    unit_price_minor: int
    currency: str


@dataclass(frozen=True)
class CartLine:
    product_id: str
    # Name and price are copied from the catalog when the product is added, so the cart
    # shows what the user agreed to even if the catalog changes later.
    name: str
    quantity: int
    unit_price_minor: int
    currency: str

    @property
    def line_total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True)
class Cart:
    user_id: str
    lines: tuple[CartLine, ...]
    # The shop's one currency; an empty cart still has one so its zero total is well-formed.
    currency: str

    @property
    def total_minor(self) -> int:
        return sum(line.line_total_minor for line in self.lines)
