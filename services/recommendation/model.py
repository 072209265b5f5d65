"""The co-occurrence model: "people who bought X also bought Y", from recent orders.

Plain Python (no gRPC): it is built from `PastOrder`s and answers with product ids, so it
can be tested alone and rebuilt cheaply whenever the order history is re-read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PastOrder:
    """One order as far as recommendations care: who bought which products, how many."""

    user_id: str
    quantities: tuple[tuple[str, int], ...]  # (product_id, quantity) per order line

    @property
    def product_ids(self) -> frozenset[str]:
        return frozenset(product_id for product_id, _ in self.quantities)


class CoOccurrenceModel:
    """Counts, for every pair of products, how many orders contained both.

    A basket is one order (not a user's whole history): two products bought in the same
    order are a much stronger "bought together" signal than two purchases months apart.
    """

    def __init__(self, orders: Iterable[PastOrder]) -> None:
        self._bought_by_user: dict[str, set[str]] = defaultdict(set)
        self._together: dict[str, Counter[str]] = defaultdict(Counter)
        self._units: Counter[str] = Counter()
        self._order_count = 0
        for order in orders:
            self._add(order)

    def _add(self, order: PastOrder) -> None:
        self._order_count += 1
        basket = order.product_ids
        self._bought_by_user[order.user_id].update(basket)
        for product_id, quantity in order.quantities:
            self._units[product_id] += quantity
        for product_id in basket:
            for other in basket:
                if other != product_id:
                    self._together[product_id][other] += 1

    @property
    def order_count(self) -> int:
        return self._order_count

    def bought_by(self, user_id: str) -> frozenset[str]:
        return frozenset(self._bought_by_user.get(user_id, ()))

    def bought_together(self, user_id: str, limit: int) -> list[str]:
        """Products co-ordered with the user's purchases, minus what the user already bought.

        Score = number of orders in which the candidate appeared next to any product the user
        bought; ties go to the more ordered product, then to the id (stable answers).
        """
        bought = self.bought_by(user_id)
        scores: Counter[str] = Counter()
        for product_id in bought:
            for other, count in self._together.get(product_id, Counter()).items():
                if other not in bought:
                    scores[other] += count
        ranked = sorted(scores, key=lambda p: (-scores[p], -self._units[p], p))
        return ranked[:limit]

    def most_ordered(self, limit: int, exclude: Iterable[str] = ()) -> list[str]:
        """Products by units ordered, most first (ties by id), skipping `exclude`."""
        skip = set(exclude)
        ranked = sorted(
            (p for p in self._units if p not in skip), key=lambda p: (-self._units[p], p)
        )
        return ranked[:limit]


def merge_unique(*groups: Sequence[str], limit: int) -> list[str]:
    """Concatenate id lists keeping first occurrences, up to `limit` ids."""
    seen: set[str] = set()
    merged: list[str] = []
    for group in groups:
        for product_id in group:
            if product_id not in seen:
                seen.add(product_id)
                merged.append(product_id)
                if len(merged) == limit:
                    return merged
    return merged
