"""A failing and a hanging payment provider while the shop keeps selling."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tools.chaos import scenarios
from tools.mesh.plan import MeshPlan

pytestmark = pytest.mark.mesh

# The Charges' deadline while payment hangs (the refused calls are measured against it).
DEADLINE = 2.0


async def test_with_payment_failing_30_percent_every_order_ends_settled_and_charged_once(
    mesh: MeshPlan, numbers: Callable[[str], None],
) -> None:
    r = await scenarios.flaky_payment(mesh, unavailable_ratio=0.3)
    numbers(
        f"payment 30% UNAVAILABLE; purchases: {r.load.summary()}\naudit: {r.audit.summary()}\n"
        f"order's Envoy retried {r.retries} Charges ({r.retry_overflow} retries refused by "
        "its retry budget)"
    )

    # Every PlaceOrder got an answer (the saga decides; nothing surfaces as an error)...
    assert r.load.failed == 0, f"{r.load.summary()}\n{r.load.details}"
    assert r.audit.orders == r.load.ok > 0, r.audit.summary()
    # ...every order ended CONFIRMED or CANCELLED, none stuck...
    assert r.audit.stuck == [], r.audit.summary()
    assert r.audit.confirmed + r.audit.cancelled == r.audit.orders
    # ...and the money is right: no order charged twice, nothing kept for a cancelled
    # order, every confirmed order captured exactly once for its total.
    assert r.audit.double_charged == [], r.audit.summary()
    assert r.audit.money_is_right, r.audit.summary()
    # Most Charges that failed were retried by order's sidecar (not by order's code).
    assert r.retries > 0
    assert r.audit.confirmed > r.audit.cancelled


async def test_a_hung_payment_opens_the_circuit_callers_fail_fast_and_all_recovers(
    mesh: MeshPlan, numbers: Callable[[str], None],
) -> None:
    r = await scenarios.hung_payment(mesh, rate=100, seconds=10, deadline=DEADLINE)
    numbers(
        f"payment hung; Charges as order: {r.during.summary()}\n"
        f"refused by the open circuit: {r.during.codes['UNAVAILABLE']}, latency p50 "
        f"{r.during.latency_ms(50, 'UNAVAILABLE'):.1f} / p90 "
        f"{r.during.latency_ms(90, 'UNAVAILABLE'):.1f} / p99 "
        f"{r.during.latency_ms(99, 'UNAVAILABLE'):.1f} / max "
        f"{r.during.latency_ms(100, 'UNAVAILABLE'):.1f} ms; waited for the deadline: "
        f"{r.during.codes['DEADLINE_EXCEEDED']}; order's Envoy counted {r.overflowed} overflows\n"
        f"dashboard meanwhile: {r.dashboard.summary()}\n"
        f"healthy again {r.recovered:.1f}s after the fault was removed; then Charges "
        f"{r.after.summary().splitlines()[0]}; dashboard "
        f"{r.dashboard_after.summary().splitlines()[0]}"
    )

    # Only what fits under order's limit to payment (16 in flight) waits for the deadline;
    # everything else is refused by order's sidecar without reaching payment at all.
    rejected = r.during.codes["UNAVAILABLE"]
    waited = r.during.codes["DEADLINE_EXCEEDED"]
    assert rejected + waited == r.during.sent, r.during.summary()
    assert rejected >= 0.7 * r.during.sent, r.during.summary()
    assert r.overflowed >= rejected
    # Refused fast instead of waiting for the 2 s deadline: the median under 10 ms, and
    # even the p99 nowhere near the deadline (under a quarter of it). The p99 is the
    # Python client's own event loop more than Envoy's refusal: a quiet two-core box
    # measured 7.7 ms, CI with other work on the cores 56 ms, a box at load 7 114 ms.
    # The precise figures go to the numbers above.
    assert r.during.latency_ms(50, "UNAVAILABLE") < 10, r.during.summary()
    assert r.during.latency_ms(99, "UNAVAILABLE") < 1000 * DEADLINE / 4, r.during.summary()
    # The dashboard degraded instead of failing: every answer came, without payment.
    assert r.dashboard.failed == 0, f"{r.dashboard.summary()}\n{r.dashboard.details}"
    degraded = sum(n for tag, n in r.dashboard.tags.items() if "payment" in tag)
    assert degraded == r.dashboard.ok > 0, r.dashboard.summary()
    # Fault removed: the mesh is healthy again (probe.restore: no caller has payment
    # ejected) within its bound, and then Charges succeed and the dashboard has payment.
    assert r.after.failed == 0 and r.after.ok > 0, f"{r.after.summary()}\n{r.after.details}"
    assert r.dashboard_after.failed == 0, (
        f"{r.dashboard_after.summary()}\n{r.dashboard_after.details}")
    assert not any("payment" in tag for tag in r.dashboard_after.tags), r.dashboard_after.tags
