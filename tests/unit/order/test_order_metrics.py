"""The order service's domain metrics count what the saga decided, once per order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY

from services.order.model import OrderState
from tests.unit.order.test_saga_logic import (  # the saga on fakes and a real SQLite file
    DECLINED_CARD,
    Shop,
    order_for,
    shop,
)

__all__ = ["shop"]  # the fixture, imported so these tests run the same shop

FIGURES = {
    "placed": ("meshmart_orders_placed_total", {}),
    "confirmed": ("meshmart_orders_confirmed_total", {}),
    "cancelled": ("meshmart_orders_cancelled_total", {}),
    "compensated": ("meshmart_saga_compensations_total", {"outcome": "completed"}),
}


@contextmanager
def counted() -> Iterator[dict[str, float]]:
    """How much each figure grew inside the block."""
    before = {k: REGISTRY.get_sample_value(n, lb) or 0.0 for k, (n, lb) in FIGURES.items()}
    delta: dict[str, float] = {}
    yield delta
    for key, (name, labels) in FIGURES.items():
        delta[key] = (REGISTRY.get_sample_value(name, labels) or 0.0) - before[key]


async def test_a_confirmed_order_counts_as_placed_and_confirmed_once(shop: Shop) -> None:
    with counted() as delta:
        order = await shop.saga.place(order_for("k-metrics-1"))
        again = await shop.saga.place(order_for("k-metrics-1"))  # a repeat counts nothing
    assert order.state is OrderState.CONFIRMED and again.order_id == order.order_id
    assert delta == {"placed": 1, "confirmed": 1, "cancelled": 0, "compensated": 0}


async def test_a_declined_order_counts_as_cancelled_and_compensated(shop: Shop) -> None:
    with counted() as delta:
        order = await shop.saga.place(order_for("k-metrics-2", card=DECLINED_CARD))
    assert order.state is OrderState.CANCELLED
    assert delta == {"placed": 1, "confirmed": 0, "cancelled": 1, "compensated": 1}
