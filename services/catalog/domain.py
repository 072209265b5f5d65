"""The catalog's read model: products held in memory, listed, looked up and searched.

The catalog has no write RPCs: products change only through the seed or a migration,
both of which run at start. So each process loads the table once into an immutable
`Catalog` and answers every read from memory. GetProduct is on the hot path of cart,
order and recommendation, and this keeps it a dict lookup instead of a SQLite query.
When write RPCs arrive they must rebuild the snapshot (and tell the other instances).
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from services.catalog import paging
from services.kit.errors import NotFound


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    description: str
    category: str
    price_minor: int
    currency: str
    image_url: str
    popularity: int


@dataclass(frozen=True)
class ProductPage:
    products: tuple[Product, ...]
    next_page_token: str


def fold(text: str) -> str:
    """Normalised, case-folded text, so "CAFÉ", "café" and "cafe\u0301" all compare equal."""
    return unicodedata.normalize("NFKC", text).casefold()


# How much a term found in each field counts toward a search hit's rank: a word in the
# name says more about the product than the same word somewhere in its description.
NAME_WEIGHT = 3
CATEGORY_WEIGHT = 2
DESCRIPTION_WEIGHT = 1


@dataclass(frozen=True)
class _SearchText:
    name: str
    category: str
    description: str

    def score(self, terms: tuple[str, ...]) -> int:
        """Rank of a product for ``terms``; 0 unless every term occurs in some field."""
        total = 0
        for term in terms:
            if term in self.name:
                total += NAME_WEIGHT
            elif term in self.category:
                total += CATEGORY_WEIGHT
            elif term in self.description:
                total += DESCRIPTION_WEIGHT
            else:
                return 0
        return total


class Catalog:
    """An immutable snapshot of every product, indexed for the catalog's three reads."""

    def __init__(self, products: Iterable[Product]) -> None:
        ordered = sorted(products, key=lambda p: p.product_id)
        self._by_id = {p.product_id: p for p in ordered}
        self._all = tuple(ordered)
        by_category: dict[str, list[Product]] = {}
        for product in ordered:
            by_category.setdefault(product.category, []).append(product)
        self._by_category = {c: tuple(ps) for c, ps in by_category.items()}
        # Sorted ids beside each product tuple, for bisecting to a page's start.
        self._ids: dict[str, list[str]] = {"": [p.product_id for p in ordered]}
        for c, ps in self._by_category.items():
            self._ids[c] = [p.product_id for p in ps]
        self._search_text = {
            p.product_id: _SearchText(fold(p.name), fold(p.category), fold(p.description))
            for p in ordered
        }

    def __len__(self) -> int:
        return len(self._all)

    @property
    def products(self) -> tuple[Product, ...]:
        """Every product, ordered by id."""
        return self._all

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_category))

    def get(self, product_id: str) -> Product:
        try:
            return self._by_id[product_id]
        except KeyError:
            raise NotFound(f"product {product_id} not found") from None

    def list_products(self, *, page_size: int, page_token: str, category: str) -> ProductPage:
        """Products ordered by id, optionally of one category (keyset paging by id)."""
        request_fingerprint = paging.fingerprint("list", category)
        cursor = paging.decode(page_token, request_fingerprint)
        products = self._by_category.get(category, ()) if category else self._all
        start = 0
        if cursor.after is not None:
            start = bisect.bisect_right(self._ids.get(category, []), cursor.after)
        page = products[start : start + page_size]
        next_token = ""
        if start + page_size < len(products):
            next_token = paging.encode(
                paging.PageCursor(after=page[-1].product_id), request_fingerprint
            )
        return ProductPage(products=page, next_page_token=next_token)

    def search_products(self, *, query: str, page_size: int, page_token: str) -> ProductPage:
        """Products whose name, category or description contain every word of ``query``.

        Best match first (weighted by the field a word was found in), then the more
        popular product, then by id so that the order, and with it paging, is total.
        """
        terms = tuple(dict.fromkeys(fold(query).split()))
        request_fingerprint = paging.fingerprint("search", " ".join(terms))
        cursor = paging.decode(page_token, request_fingerprint)
        scored = [
            (score, product)
            for product in self._all
            if (score := self._search_text[product.product_id].score(terms)) > 0
        ]
        scored.sort(key=lambda hit: (-hit[0], -hit[1].popularity, hit[1].product_id))
        # The snapshot never changes while the process lives, so an offset names the
        # same position on every call; keyset paging would buy nothing here.
        start = cursor.offset
        page = tuple(product for _, product in scored[start : start + page_size])
        next_token = ""
        if start + page_size < len(scored):
            next_token = paging.encode(
                paging.PageCursor(offset=start + page_size), request_fingerprint
            )
        return ProductPage(products=page, next_page_token=next_token)
