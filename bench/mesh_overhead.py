"""What the two sidecars cost: one unary call direct vs through the mesh, as ratios.

    .venv/bin/python bench/mesh_overhead.py [--duration 10] [--rounds 2] [--pods]

Starts a small mesh of its own (Consul, one catalog instance, one cart instance as the
caller identity, their two sidecars; the real config entries) on a free loopback
address, then measures catalog.GetProduct with ghz, interleaving in one run:

  direct   ghz -> 127.0.0.x:7110 (the catalog process)
  mesh     ghz -> cart's sidecar upstream listener -> mTLS -> catalog's sidecar -> catalog

at a fixed 1000 RPC/s (p50, p90, p99) and at saturation (RPC/s with unbounded rate),
once with sidecars on one Envoy worker (--concurrency 1) and once with Envoy's default
workers (one per core). Prints each run and the ratios; tears the mesh down at the end
(also on failure). Every process it starts is stopped by pid.

--pods (root): then the same two services once more on pods (tools/mesh/pods.py), one
Envoy worker each: direct is ghz in catalog's pod to its 127.0.0.1:7110, mesh is ghz in
cart's pod -> cart's sidecar -> veth and bridge -> catalog's sidecar in its pod; and
the two layouts side by side (what the veth hop adds to the shared loopback's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.ghz import ghz, latency_ms, status_codes
from harness.host import free_mesh_address
from tools.mesh import control
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor, render
from tools.mesh.topology import Service, Topology, load_topology

# The call every catalog benchmark measures (GetProduct of one product).
CALL = "meshmart.catalog.v1.CatalogService/GetProduct"
PAYLOAD = '{"product_id": "sku-1001"}'


@dataclass(frozen=True)
class Run:
    path: str  # direct / mesh
    mode: str  # "1000 rps" / "saturation"
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: str  # non-OK status codes and counts, e.g. "Unavailable:3"


def bench_topology() -> Topology:
    full = load_topology()
    cat, cart = full.services["catalog"], full.services["cart"]
    services = {
        "catalog": Service("catalog", cat.port, 1, ()),  # one instance: same as direct
        "cart": Service("cart", cart.port, 1, ("catalog",)),
    }
    return Topology(services=services, rules=full.rules, source=full.source)




def tear_down(plan: MeshPlan, run_dir: Path, *, keep_logs: bool = False) -> None:
    """Stop a benchmark's mesh (every process by pid) and remove its run dir unless
    ``keep_logs``."""
    control.down(plan, out=sys.stderr)
    if not keep_logs:
        shutil.rmtree(run_dir, ignore_errors=True)


def summarize(path: str, mode: str, report: dict[str, Any]) -> Run:
    # Calls still in flight when a -z run ends come back Canceled: not errors.
    errors = ",".join(
        f"{code}:{n}" for code, n in sorted(status_codes(report).items())
        if code not in ("OK", "Canceled")
    ) or "0"
    return Run(path, mode, float(report["rps"]), latency_ms(report, 50),
               latency_ms(report, 90), latency_ms(report, 99), errors)


def measure(plan: MeshPlan, label: str, duration: int, rounds: int) -> list[Run]:
    catalog = plan.instance("catalog-1")
    cart = plan.instance("cart-1")
    # ghz runs where the caller is: in the pod of the process it dials (none: the host).
    targets = {
        "direct": (plan.in_pod(catalog, []), f"{catalog.local_address}:{catalog.port}"),
        "mesh": (plan.in_pod(cart, []), cart.upstream_target("catalog")),
    }
    for prefix, target in targets.values():  # warm up connections, caches, TLS session
        ghz(target, CALL, PAYLOAD, rps=500, concurrency=8, seconds=2, prefix=prefix)
    runs = []
    for _ in range(rounds):
        for path, (prefix, target) in targets.items():
            report = ghz(target, CALL, PAYLOAD, rps=1000, concurrency=16, seconds=duration,
                         prefix=prefix)
            runs.append(summarize(path, "1000 rps", report))
        for path, (prefix, target) in targets.items():
            report = ghz(target, CALL, PAYLOAD, concurrency=32, seconds=duration,
                         prefix=prefix)
            runs.append(summarize(path, "saturation", report))
    print(f"\n== sidecars: {label}")
    print(f"{'path':<7} {'mode':<11} {'RPC/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} err")
    for r in runs:
        print(f"{r.path:<7} {r.mode:<11} {r.rps:>8.0f} {r.p50_ms:>7.2f} {r.p90_ms:>7.2f} "
              f"{r.p99_ms:>7.2f} {r.errors}")

    def med(path: str, mode: str, field: str) -> float:
        values = [getattr(r, field) for r in runs if (r.path, r.mode) == (path, mode)]
        return float(statistics.median(values))

    print(f"-- ratios mesh/direct ({label}; medians of {rounds} rounds):")
    for field in ("p50_ms", "p90_ms", "p99_ms"):
        d, m = med("direct", "1000 rps", field), med("mesh", "1000 rps", field)
        print(f"   {field[:3]} @1000 RPC/s  {m:.2f} / {d:.2f} ms = {m / d:.2f}x  (+{m - d:.2f} ms)")
    satd, satm = med("direct", "saturation", "rps"), med("mesh", "saturation", "rps")
    print(f"   saturation       {satm:.0f} / {satd:.0f} RPC/s = {satm / satd:.2f}x")
    print(f"   (load average now {os.getloadavg()[0]:.1f})")
    return runs


def switch_concurrency(plan: MeshPlan, concurrency: int) -> MeshPlan:
    """Restart the sidecars with another Envoy worker count (supervisord update restarts
    the programs whose command changed), then start anything not running and wait."""
    new = replace(plan, envoy_concurrency=concurrency)
    programs = control.programs(new)
    new.supervisor_conf.write_text(render(new, programs))
    sup = Supervisor(new)
    sup.update()
    for program in programs:
        if program.group in ("services", "sidecars"):
            sup.start(f"{program.group}:{program.name}")
    control.wait_ready(new, deadline=time.monotonic() + 120)
    return new


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per ghz run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--pods", action="store_true",
                        help="also on pods, one worker per sidecar, side by side (root)")
    args = parser.parse_args()
    plan, run_dir = bench_plan(pods=False)
    print(f"mesh for the benchmark on {plan.address}, run dir {run_dir}; cores: {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    # SIGTERM (e.g. `timeout`) must still run the teardown below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        control.up(plan, out=sys.stderr, check_entries=False)
        shared = measure(plan, "--concurrency 1", args.duration, args.rounds)
        plan = switch_concurrency(plan, 0)
        measure(plan, "Envoy default workers (one per core)", args.duration, args.rounds)
    finally:
        tear_down(plan, run_dir, keep_logs=args.keep_logs)
    if args.pods:
        plan, run_dir = bench_plan(pods=True)
        try:
            control.up(plan, out=sys.stderr, check_entries=False)
            pods = measure(plan, "pods, --concurrency 1", args.duration, args.rounds)
        finally:
            tear_down(plan, run_dir, keep_logs=args.keep_logs)
        compare(shared, pods, args.rounds)
    return 0


def bench_plan(*, pods: bool) -> tuple[MeshPlan, Path]:
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-bench-"))
    topology = bench_topology()
    address = free_mesh_address(topology, first=3)
    plan = MeshPlan(topology=topology, address=address, run_dir=run_dir, pods=pods,
                    envoy_concurrency=1, extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
    return plan, run_dir


def compare(shared: list[Run], pods: list[Run], rounds: int) -> None:
    """The two layouts side by side, one Envoy worker per sidecar (medians)."""

    def med(runs: list[Run], path: str, mode: str, field: str) -> float:
        return float(statistics.median(
            getattr(r, field) for r in runs if (r.path, r.mode) == (path, mode)))

    print(f"\n== pods vs shared loopback (--concurrency 1; medians of {rounds} rounds)")
    print(f"{'path':<7} {'p50 ms shared/pods':>19} {'p99 ms shared/pods':>19} "
          f"{'saturation RPC/s shared/pods':>29}")
    for path in ("direct", "mesh"):
        p50, p99, sat = (
            [med(runs, path, mode, field) for runs in (shared, pods)]
            for mode, field in (("1000 rps", "p50_ms"), ("1000 rps", "p99_ms"),
                                ("saturation", "rps"))
        )
        print(f"{path:<7} {p50[0]:>9.2f} / {p50[1]:<7.2f} {p99[0]:>9.2f} / {p99[1]:<7.2f} "
              f"{sat[0]:>17.0f} / {sat[1]:<9.0f}")
    for name, runs in (("shared", shared), ("pods", pods)):
        d, m = med(runs, "direct", "1000 rps", "p50_ms"), med(runs, "mesh", "1000 rps", "p50_ms")
        print(f"   mesh overhead {name:<6} p50 +{m - d:.2f} ms ({m / d:.2f}x direct)")


if __name__ == "__main__":
    sys.exit(main())
