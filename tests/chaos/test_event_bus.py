"""The event bus killed mid-purchase (tests/mesh/test_events.py stops it cleanly, with
no traffic; here it dies with SIGKILL while orders are being placed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tools.chaos import scenarios
from tools.mesh.plan import MeshPlan

pytestmark = pytest.mark.mesh


async def test_nats_killed_during_purchases_loses_and_doubles_no_notification_or_sale(
    mesh: MeshPlan, numbers: Callable[[str], None],
) -> None:
    r = await scenarios.nats_killed(mesh)
    numbers(
        f"kill -9 nats-server mid-purchase, JetStream back after {r.down_for:.1f}s; "
        f"outbox backlog peak {r.backlog_peak} events, all consumed {r.settled_after:.1f}s "
        f"after the last purchase\npurchases: {r.load.summary()}\norders: "
        f"{r.orders.summary()}\nevents: {r.events.summary()}"
    )

    assert r.load.failed == 0, f"{r.load.summary()}\n{r.load.details}"
    assert r.orders.stuck == [] and r.orders.confirmed > 0, r.orders.summary()
    # The outage happened while events were being produced: some waited in the outboxes.
    assert r.backlog_peak > 0
    # Exactly one message per order (and refund), one mail file each, and analytics
    # counted every confirmed order once.
    assert r.events.missing == [], r.events.summary()
    assert r.events.duplicated == [] and r.events.unexpected == [], r.events.summary()
    assert r.events.mail_files_missing == [], r.events.summary()
    assert r.events.sales_seen == r.events.sales_expected, r.events.summary()
