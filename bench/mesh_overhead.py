"""What the two sidecars cost: one unary call direct vs through the mesh, as ratios.

    .venv/bin/python bench/mesh_overhead.py [--duration 10] [--rounds 2]

Starts a small mesh of its own (Consul, one catalog instance, one cart instance as the
caller identity, their two sidecars; the real config entries) on a free loopback
address, then measures catalog.GetProduct with ghz, interleaving in one run:

  direct   ghz -> 127.0.0.x:7110 (the catalog process)
  mesh     ghz -> cart's sidecar upstream listener -> mTLS -> catalog's sidecar -> catalog

at a fixed 1000 RPC/s (p50, p90, p99) and at saturation (RPC/s with unbounded rate),
once with sidecars on one Envoy worker (--concurrency 1) and once with Envoy's default
workers (one per core). Prints each run and the ratios; tears the mesh down at the end
(also on failure). Every process it starts is stopped by pid.
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
from harness.host import free_loopback
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
    targets = {"direct": catalog.grpc_target, "mesh": cart.upstream_target("catalog")}
    for target in targets.values():  # warm up connections, caches, Envoy's TLS session
        ghz(target, CALL, PAYLOAD, rps=500, concurrency=8, seconds=2)
    runs = []
    for _ in range(rounds):
        for path, target in targets.items():
            report = ghz(target, CALL, PAYLOAD, rps=1000, concurrency=16, seconds=duration)
            runs.append(summarize(path, "1000 rps", report))
        for path, target in targets.items():
            report = ghz(target, CALL, PAYLOAD, concurrency=32, seconds=duration)
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
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-bench-"))
    topology = bench_topology()
    address = free_loopback(topology.rules.consul_http_port, first=3)
    plan = MeshPlan(topology=topology, address=address, run_dir=run_dir,
                    envoy_concurrency=1,
                    extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
    print(f"mesh for the benchmark on {plan.address}, run dir {run_dir}; cores: {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    # SIGTERM (e.g. `timeout`) must still run the teardown below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        control.up(plan, out=sys.stderr, check_entries=False)
        measure(plan, "--concurrency 1", args.duration, args.rounds)
        plan = switch_concurrency(plan, 0)
        measure(plan, "Envoy default workers (one per core)", args.duration, args.rounds)
    finally:
        tear_down(plan, run_dir, keep_logs=args.keep_logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
