"""Instances going away under steady load: a crash (kill -9) and a rolling restart
(SIGTERM, one instance at a time). Both must cost the clients zero failed calls."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tools.chaos import scenarios
from tools.mesh.http import get_text
from tools.mesh.plan import MeshPlan
from tools.mesh.sidecar import MAX_RETRIES

pytestmark = pytest.mark.mesh

# Asked for; the scenario runs at less when the path carries less (scenarios.sized).
RATE = 200


async def test_killing_one_of_two_catalog_instances_under_load_fails_no_call(
    mesh: MeshPlan, numbers: Callable[[str], None],
) -> None:
    # The calls in flight on the instance when it dies all fail at once and each needs a
    # retry: the sidecars allow more retries in flight than Envoy's default 3.
    clusters = get_text(f"{mesh.instance('cart-1').admin_url}/clusters")
    assert f"default_priority::max_retries::{MAX_RETRIES}" in clusters

    r = await scenarios.kill_one_catalog_instance(mesh, rate=RATE)
    numbers(
        f"{r.rate:.0f} ListProducts/s as cart (its sidecar carried {r.carried:.0f}/s), "
        f"kill -9 {r.victim} at {r.killed_at:.1f}s\n"
        f"{r.load.summary()}\n"
        f"{r.victim} answered {r.served_before_kill} calls in the 3s before; "
        f"Consul: {scenarios.seen(r.critical_after, 'critical')}, cart's Envoy: "
        f"{scenarios.seen(r.dropped_after, 'stopped routing to it')}, supervisord restarted "
        f"it after {r.restarted_after:.1f}s, back in every caller's rotation after "
        f"{r.back_after:.1f}s "
        f"(answered {r.served_after_return} calls in the next 3s); cart's Envoy retried "
        f"{r.retries} calls; its circuit breakers refused {r.overflows or 'nothing'}"
    )

    assert r.load.failed == 0, (
        f"{r.load.summary()}\n{r.load.details}\n{r.failed_before_kill} of them before the "
        f"kill at {r.killed_at:.1f}s (with both instances up: the machine did not carry "
        f"{r.rate:.0f} RPC/s); cart's circuit breakers refused {r.overflows}; per second "
        f"(ok/failed/p99): "
        + " ".join(f"{t:.0f}s:{ok}/{f}/{p:.0f}ms" for t, ok, f, p in r.load.timeline())
    )
    # It really was under load: a real share of what the path carries, and sent at that
    # rate (a starved driver would prove less).
    assert r.rate >= 20, f"the path carried only {r.carried:.0f} ListProducts/s"
    assert r.load.sent >= 0.8 * r.rate * 6, r.load.summary()
    # supervisord replaced it, and it is serving again: back in every caller's rotation
    # and answering calls. (Whether Consul showed it critical first is a race with the
    # restart, reported above and not asserted; when the caller's Envoy did drop it, that
    # took at most a few of Consul's 1 s check intervals.)
    assert r.dropped_after is None or r.dropped_after < 10, r
    assert r.served_after_return > 0, r
    # The victim was taking its share of the load when it died. (How many calls met it
    # dead and were retried elsewhere, reported above, depends on where the kill falls
    # between calls: at 48/s it was 4, at 192/s 7; zero is possible and fine.)
    assert r.served_before_kill > 0.2 * r.rate * 3, r


async def test_a_rolling_restart_of_every_replicated_instance_fails_no_call(
    mesh: MeshPlan, numbers: Callable[[str], None],
) -> None:
    victims = [i.instance_id for i in scenarios.replicated_instances(mesh)]
    assert {"catalog-1", "catalog-2", "payment-1", "payment-2", "recommendation-1"} <= set(
        victims
    )

    r = await scenarios.rolling_restart(mesh)
    numbers(
        f"cart's sidecar carried {r.carried:.0f} ListProducts/s before the restarts\n"
        + "\n".join(f"{service} at {r.rates[service]:.1f}/s: {load.summary()}"
                    for service, load in r.loads.items())
        + "\nback in rotation after (SIGTERM -> passing and in every caller's Envoy): "
        + ", ".join(f"{s.instance_id} {s.back_after:.1f}s" for s in r.steps)
        + f"\nretries by the callers' Envoys: {r.retries}"
    )

    assert [s.instance_id for s in r.steps] == victims
    failures = {s: (load.failed_by_code, load.details) for s, load in r.loads.items()
                if load.failed}
    assert failures == {}, {s: load.summary() for s, load in r.loads.items()}
    for service, load in r.loads.items():
        assert load.ok > 0, f"no {service} call was made"
