"""The order service's domain figures for Prometheus (next to the kit's RED metrics).

Counted where the saga decides (saga.py), so a repeat PlaceOrder returning an existing
order counts nothing, and a recovery that finishes an order after a restart counts it once.
"""

from __future__ import annotations

from prometheus_client import Counter

ORDERS_PLACED = Counter(
    "meshmart_orders_placed_total", "Orders created by PlaceOrder (the saga started)."
)
ORDERS_CONFIRMED = Counter("meshmart_orders_confirmed_total", "Orders that ended CONFIRMED.")
ORDERS_CANCELLED = Counter(
    "meshmart_orders_cancelled_total", "Orders that ended CANCELLED (decision recorded)."
)
# outcome: "completed" (stock released and any capture refunded) or "deferred" (an
# upstream was down: the sweep retries; a steady rise means compensation is stuck).
SAGA_COMPENSATIONS = Counter(
    "meshmart_saga_compensations_total",
    "Compensation runs of cancelled orders, by outcome.",
    ["outcome"],
)
SAGA_REFUNDS = Counter(
    "meshmart_saga_refunds_total", "Captured payments refunded by a compensation."
)
