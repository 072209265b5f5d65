"""What the two sidecars cost in containers, beside what they cost on `make up`'s
layout, measured in one run (issue 19).

    .venv/bin/python -m bench.compose_overhead [--duration 8] [--rounds 2] [--rate 300 ...]

Needs root, podman and runc (`make setup`). Brings up both at once: the small mesh of
bench/mesh_overhead.py (Consul, one catalog and one cart instance and their two
sidecars, on a free loopback address, one Envoy worker each) and the whole shop in
containers (harness/compose.py: docker-compose.yml as `make compose-up` runs it, as a
project of its own on a free address and subnet), with catalog-2 stopped (gracefully:
it deregisters) so that catalog-1 is the one instance behind cart's sidecar in both.
Then catalog.GetProduct with ghz, rounds interleaved (bench/mesh_overhead.py
interleaved()):

  direct          ghz on the host -> catalog-1 on loopback
  mesh            ghz -> cart-1's sidecar -> mTLS -> catalog-1's sidecar -> catalog-1
  compose-direct  ghz in cart-1's container's network namespace (nsenter) -> catalog-1's
                  container address, across the veth pair and the bridge
  compose-mesh    ghz in cart-1's namespace -> cart-1-sidecar's upstream listener ->
                  mTLS across the bridge -> catalog-1-sidecar -> catalog-1

and prints what each pair adds to its own direct path, and the two side by side. The
containers' sidecars run Envoy's default worker count (docker/sidecar-entrypoint.sh),
the benchmark mesh's one worker (what bench/mesh_overhead.py compares). Everything is
torn down at the end, also on failure: the mesh's processes by pid, the project with
`docker-compose down -v` and its podman service.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from bench import mesh_overhead
from bench.goals import GOALS
from bench.mesh_overhead import (
    Run,
    Target,
    added,
    interleaved,
    median_of,
    mesh_targets,
    print_runs,
    saturation_ratio,
)
from harness.compose import ComposeRun, project
from tools.mesh import control

PROJECT = "meshmart-bench"
PAIRS = (("direct", "mesh"), ("compose-direct", "compose-mesh"))


def compose_targets(run: ComposeRun) -> dict[str, Target]:
    """Both compose paths, dialled from inside cart-1's network namespace."""
    services = run.config["services"]
    catalog, cart = services["catalog-1"]["environment"], services["cart-1"]["environment"]
    inside_cart = ["nsenter", "-t", str(run.pid("cart-1")), "-n"]
    return {
        "compose-direct": (inside_cart, f"{catalog['MESHMART_HOST']}:{catalog['MESHMART_PORT']}"),
        "compose-mesh": (inside_cart, cart["MESHMART_UPSTREAM_CATALOG"]),
    }


def side_by_side(runs: Sequence[Run], rates: Sequence[int]) -> list[str]:
    """Per rate and percentile, what each layout's pair adds to its own direct path
    (median over rounds of the same round's difference), and saturation over direct."""
    lines = []
    for rate in rates:
        mode = f"{rate} rps"
        for field in ("p50_ms", "p99_ms"):
            shared, contained = (added(runs, mesh, mode, field, base=direct)
                                 for direct, mesh in PAIRS)
            med = {path: median_of(runs, path, mode, field) for pair in PAIRS for path in pair}
            lines.append(
                f"{field[:3]} @{rate} RPC/s  make up: direct {med['direct']:.2f}, mesh "
                f"{med['mesh']:.2f} ms ({shared:+.2f})   containers: direct "
                f"{med['compose-direct']:.2f}, mesh {med['compose-mesh']:.2f} ms "
                f"({contained:+.2f})")
    sat = [saturation_ratio(runs, mesh, base=direct) for direct, mesh in PAIRS]
    lines.append(f"saturation, mesh over direct: make up {sat[0]:.2f}x, containers "
                 f"{sat[1]:.2f}x")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per ghz run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, action="append",
                        help=f"fixed rates, RPC/s (default {list(GOALS.sidecar_rates)})")
    args = parser.parse_args()
    rates = args.rate or list(GOALS.sidecar_rates)
    # SIGTERM (e.g. `timeout`) must still run the teardowns below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan, run_dir = mesh_overhead.bench_plan(pods=False)
    try:
        control.up(plan, out=sys.stderr, check_entries=False)
        with project(PROJECT, out=sys.stderr) as run:
            run.engine.compose("stop", "catalog-2", "catalog-2-sidecar")
            targets = {**mesh_targets(plan), **compose_targets(run)}
            print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; "
                  f"make up's layout on {plan.address}, containers on {run.subnet}")
            runs = interleaved(targets, args.duration, args.rounds, rates)
    finally:
        mesh_overhead.tear_down(plan, run_dir)
    print_runs(runs)
    print(f"-- medians of {args.rounds} rounds; (added) = the pair's run minus its own "
          "direct run of the same round:")
    for line in side_by_side(runs, rates):
        print(f"   {line}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
