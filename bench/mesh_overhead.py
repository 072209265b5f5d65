"""What the two sidecars cost: one unary call direct, through a bare Envoy pair and
through the mesh, as ratios.

    .venv/bin/python bench/mesh_overhead.py [--duration 10] [--rounds 2] [--rate 300 ...]
                                            [--pods]

Starts a small mesh of its own (Consul, one catalog instance, one cart instance as the
caller identity, their two sidecars; the real config entries) on a free loopback
address, and beside it a bare Envoy pair in front of the same catalog process
(bench/bare_pair.py: static bootstraps, HTTP/2, router only, no TLS, one worker each),
then measures catalog.GetProduct with ghz, interleaving in one run:

  direct   ghz -> 127.0.0.x:7110 (the catalog process)
  bare     ghz -> bare caller Envoy -> bare callee Envoy -> catalog
  mesh     ghz -> cart's sidecar upstream listener -> mTLS -> catalog's sidecar -> catalog

at fixed rates (default bench/goals.toml [sidecar_pair] rates: 300 and 1000 RPC/s; p50,
p90, p99) and at saturation (RPC/s with unbounded rate), once with sidecars on one Envoy
worker (--concurrency 1) and once with Envoy's default workers (one per core; without
the bare pair, which stays on one worker). Prints each run, what each pair adds to
direct and the Consul pair's added over the bare pair's (issue 22 goal 2); tears
everything down at the end (also on failure). Every process it starts is stopped by pid.

--pods (root): then the same two services once more on pods (tools/mesh/pods.py), one
Envoy worker each: direct is ghz in catalog's pod to its 127.0.0.1:7110, mesh is ghz in
cart's pod -> cart's sidecar -> veth and bridge -> catalog's sidecar in its pod; and
the two layouts side by side (what the veth hop adds to the shared loopback's).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.bare_pair import EnvoyPair
from bench.goals import GOALS
from harness.ghz import failed_calls, ghz, latency_ms
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
    round: int = 0  # the round it ran in (runs of one round ran back to back)


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


def summarize(path: str, mode: str, report: dict[str, Any], round_number: int = 0) -> Run:
    errors = ",".join(f"{code}:{n}" for code, n in sorted(failed_calls(report).items())) or "0"
    return Run(path, mode, float(report["rps"]), latency_ms(report, 50),
               latency_ms(report, 90), latency_ms(report, 99), errors, round_number)


Target = tuple[Sequence[str], str]  # (command prefix ghz runs under, the address it dials)


def mesh_targets(plan: MeshPlan) -> dict[str, Target]:
    """catalog-1 dialled directly, and through cart-1's catalog upstream (the two
    sidecars). ghz runs where the caller is: in the pod of the process it dials (none:
    the host)."""
    catalog, cart = plan.instance("catalog-1"), plan.instance("cart-1")
    return {
        "direct": (plan.in_pod(catalog, []), f"{catalog.local_address}:{catalog.port}"),
        "mesh": (plan.in_pod(cart, []), cart.upstream_target("catalog")),
    }


def measure(plan: MeshPlan, label: str, duration: int, rounds: int, *,
            rates: Sequence[int] = (1000,), bare: str | None = None) -> list[Run]:
    """ghz runs of catalog.GetProduct direct and through the two sidecars, and through
    the bare Envoy pair listening at ``bare`` (bench/bare_pair.py) if given
    (interleaved()). Prints the runs and the ratios (summary())."""
    targets = mesh_targets(plan)
    if bare is not None:
        targets["bare"] = ([], bare)
    runs = interleaved(targets, duration, rounds, rates)
    print(f"\n== sidecars: {label}")
    print_runs(runs)
    print(f"-- medians of {rounds} rounds ({label}); added = the path's run minus the direct "
          "run of the same round, median over rounds:")
    for line in summary(runs, rates):
        print(f"   {line}")
    print(f"   (load average now {os.getloadavg()[0]:.1f})")
    return runs


def interleaved(targets: dict[str, Target], duration: int, rounds: int,
                rates: Sequence[int]) -> list[Run]:
    """ghz runs of catalog.GetProduct to each target at each of ``rates`` (16 in flight)
    and at saturation (c=32): per round every rate, every path in turn (the order
    rotating each round), then every path at saturation; after a warm-up of each
    (connections, caches, TLS sessions)."""
    for prefix, target in targets.values():
        ghz(target, CALL, PAYLOAD, rps=500, concurrency=8, seconds=2, prefix=prefix)
    paths = list(targets)
    runs = []
    for number in range(rounds):
        order = paths[number % len(paths):] + paths[:number % len(paths)]
        for rate in rates:
            for path in order:
                prefix, target = targets[path]
                report = ghz(target, CALL, PAYLOAD, rps=rate, concurrency=16, seconds=duration,
                             prefix=prefix)
                runs.append(summarize(path, f"{rate} rps", report, number))
        for path in order:
            prefix, target = targets[path]
            report = ghz(target, CALL, PAYLOAD, concurrency=32, seconds=duration, prefix=prefix)
            runs.append(summarize(path, "saturation", report, number))
    return runs


def print_runs(runs: Sequence[Run]) -> None:
    width = max(len(r.path) for r in runs)
    print(f"{'path':<{width}} {'mode':<11} {'RPC/s':>8} {'p50 ms':>7} {'p90 ms':>7} "
          f"{'p99 ms':>7} err")
    for r in runs:
        print(f"{r.path:<{width}} {r.mode:<11} {r.rps:>8.0f} {r.p50_ms:>7.2f} {r.p90_ms:>7.2f} "
              f"{r.p99_ms:>7.2f} {r.errors}")


def median_of(runs: Sequence[Run], path: str, mode: str, field: str) -> float:
    return float(statistics.median(
        getattr(r, field) for r in runs if (r.path, r.mode) == (path, mode)))


def added(runs: Sequence[Run], path: str, mode: str, field: str,
          base: str = "direct") -> float:
    """What ``path`` adds to ``base``: per round its run minus the base's run of the same
    round and mode, the median over rounds."""
    direct = {r.round: getattr(r, field) for r in runs if (r.path, r.mode) == (base, mode)}
    return float(statistics.median(
        getattr(r, field) - direct[r.round] for r in runs
        if (r.path, r.mode) == (path, mode) and r.round in direct))


def saturation_ratio(runs: Sequence[Run], path: str, base: str = "direct") -> float:
    """RPC/s at saturation through ``path`` over ``base``, per round, the median."""
    direct = {r.round: r.rps for r in runs if (r.path, r.mode) == (base, "saturation")}
    return float(statistics.median(
        r.rps / direct[r.round] for r in runs
        if (r.path, r.mode) == (path, "saturation") and r.round in direct))


def pair_ratio(mesh_added: float, bare_added: float) -> float:
    """What the Consul pair adds over what the bare pair adds (inf when the bare pair added
    nothing measurable: the box's noise was larger than the bare pair's cost)."""
    return mesh_added / bare_added if bare_added > 0 else math.inf


def summary(runs: Sequence[Run], rates: Sequence[int]) -> list[str]:
    has_bare = any(r.path == "bare" for r in runs)
    lines = []
    for rate in rates:
        mode = f"{rate} rps"
        for field in ("p50_ms", "p90_ms", "p99_ms"):
            d, m = median_of(runs, "direct", mode, field), median_of(runs, "mesh", mode, field)
            line = (f"{field[:3]} @{rate} RPC/s  direct {d:.2f}  mesh {m:.2f} ms "
                    f"({added(runs, 'mesh', mode, field):+.2f})")
            if has_bare:
                b, ba = median_of(runs, "bare", mode, field), added(runs, "bare", mode, field)
                ratio = pair_ratio(added(runs, "mesh", mode, field), ba)
                line += (f"  bare pair {b:.2f} ms ({ba:+.2f})  Consul added / bare added "
                         f"{ratio:.2f}x")
            lines.append(line)
    satd, satm = median_of(runs, "direct", "saturation", "rps"), median_of(
        runs, "mesh", "saturation", "rps")
    line = (f"saturation  direct {satd:.0f}  mesh {satm:.0f} RPC/s "
            f"({saturation_ratio(runs, 'mesh'):.2f}x)")
    if has_bare:
        line += (f"  bare pair {median_of(runs, 'bare', 'saturation', 'rps'):.0f} RPC/s "
                 f"({saturation_ratio(runs, 'bare'):.2f}x)")
    lines.append(line)
    return lines


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
    parser.add_argument("--rate", type=int, action="append",
                        help=f"fixed rates, RPC/s (default {list(GOALS.sidecar_rates)})")
    parser.add_argument("--pods", action="store_true",
                        help="also on pods, one worker per sidecar, side by side (root)")
    args = parser.parse_args()
    rates = args.rate or list(GOALS.sidecar_rates)
    plan, run_dir = bench_plan(pods=False)
    print(f"mesh for the benchmark on {plan.address}, run dir {run_dir}; cores: {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    # SIGTERM (e.g. `timeout`) must still run the teardown below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        control.up(plan, out=sys.stderr, check_entries=False)
        with bare_pair(plan) as bare:
            shared = measure(plan, "--concurrency 1", args.duration, args.rounds, rates=rates,
                             bare=bare.target)
        plan = switch_concurrency(plan, 0)
        measure(plan, "Envoy default workers (one per core)", args.duration, args.rounds,
                rates=rates)
    finally:
        tear_down(plan, run_dir, keep_logs=args.keep_logs)
    if args.pods:
        plan, run_dir = bench_plan(pods=True)
        try:
            control.up(plan, out=sys.stderr, check_entries=False)
            pods = measure(plan, "pods, --concurrency 1", args.duration, args.rounds,
                           rates=rates)
        finally:
            tear_down(plan, run_dir, keep_logs=args.keep_logs)
        compare(shared, pods, args.rounds, f"{rates[-1]} rps")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def bare_pair(plan: MeshPlan) -> EnvoyPair:
    """The bare Envoy pair in front of the benchmark mesh's catalog-1, on the mesh's
    address, its files in the run dir (a context manager: started and stopped by it)."""
    catalog = plan.instance("catalog-1")
    return EnvoyPair.bare(plan.run_dir / "bare-pair", plan.address,
                          (catalog.local_address, catalog.port))


def bench_plan(*, pods: bool) -> tuple[MeshPlan, Path]:
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-bench-"))
    topology = bench_topology()
    address = free_mesh_address(topology, first=3)
    plan = MeshPlan(topology=topology, address=address, run_dir=run_dir, pods=pods,
                    envoy_concurrency=1, extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
    return plan, run_dir


def compare(shared: list[Run], pods: list[Run], rounds: int, rate_mode: str) -> None:
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
            for mode, field in ((rate_mode, "p50_ms"), (rate_mode, "p99_ms"),
                                ("saturation", "rps"))
        )
        print(f"{path:<7} {p50[0]:>9.2f} / {p50[1]:<7.2f} {p99[0]:>9.2f} / {p99[1]:<7.2f} "
              f"{sat[0]:>17.0f} / {sat[1]:<9.0f}")
    for name, runs in (("shared", shared), ("pods", pods)):
        d, m = med(runs, "direct", rate_mode, "p50_ms"), med(runs, "mesh", rate_mode, "p50_ms")
        print(f"   mesh overhead {name:<6} p50 +{m - d:.2f} ms ({m / d:.2f}x direct)")


if __name__ == "__main__":
    sys.exit(main())
