"""`make bench`: what the mesh costs, measured side by side in one run, as a short report.

    .venv/bin/python -m bench.report [--duration 8] [--rounds 2] [--skip-edge] [--skip-events]

1. Mesh overhead (bench/mesh_overhead.py's mesh and ghz runs): catalog.GetProduct direct
   vs through two sidecars (mTLS), p50/p90/p99 at 1000 RPC/s and RPC/s at saturation,
   interleaved round by round; medians and ratios.
2. One Python service process: the direct saturation figure of (1) (a one-process
   catalog, ghz with 32 concurrent calls on one connection, sharing the two cores).
3. Memory: RSS of each process of that mesh (Envoys, Consul, the Python service) at
   idle and right after the load.
4. The edge: REST through the edge vs gRPC through the same Envoy, by the edge's own
   benchmark (bench/edge_rest_vs_grpc.py, which starts the whole shop), if it is there.
5. Events: outbox -> JetStream -> consumer, by the events benchmark (bench/events.py), if
   it is there.

Each part's goal from ../shared/DESIGN.md ("Measures we hold ourselves to") is printed
beside its figure. The report goes to stdout and to .run/bench/report.md. Every mesh and
process a part starts is stopped by that part (also on failure). Figures from a loaded
two-core machine are noisy: the ratios, measured in one run, are what to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import mesh_overhead
from tools.mesh import control
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import ROOT

REPORT = ROOT / ".run" / "bench" / "report.md"

# ../shared/DESIGN.md, "Measures we hold ourselves to".
GOAL_P50_MS = 0.4
GOAL_P90_MS = 0.46
GOAL_P99_MS = 0.9
GOAL_SATURATION = 0.85
GOAL_PYTHON_RPS = 5000
GOAL_ENVOY_IDLE_MB = 55


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.add("| " + " | ".join(row) + " |")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory(plan: MeshPlan) -> dict[str, float]:
    """program name -> RSS (MB) of every process supervisord runs for the plan."""
    return {p["name"]: rss_mb(int(p["pid"])) for p in Supervisor(plan).processes() if p["pid"]}


def mark(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def overhead(report: Report, duration: int, rounds: int) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-report-"))
    topology = mesh_overhead.bench_topology()
    plan = MeshPlan(topology=topology, address=mesh_overhead.free_address(), run_dir=run_dir,
                    envoy_concurrency=topology.rules.envoy_concurrency,
                    extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
    sys.stderr.write(f"[bench] overhead mesh on {plan.address} ({run_dir})\n")
    try:
        control.up(plan, out=sys.stderr, check_entries=False)
        idle = memory(plan)
        runs = mesh_overhead.measure(
            plan, f"--concurrency {plan.envoy_concurrency}", duration, rounds)
        loaded = memory(plan)
    finally:
        control.down(plan, out=sys.stderr)
        subprocess.run(["rm", "-rf", str(run_dir)], check=False)

    def med(path: str, mode: str, attr: str) -> float:
        return float(statistics.median(
            getattr(r, attr) for r in runs if (r.path, r.mode) == (path, mode)))

    report.add()
    report.add(f"## 1. Mesh overhead: catalog.GetProduct direct vs two sidecars (mTLS), "
               f"Envoy --concurrency {plan.envoy_concurrency}, medians of {rounds} rounds "
               f"of {duration}s")
    report.add()
    rows = []
    for attr, goal in (("p50_ms", GOAL_P50_MS), ("p90_ms", GOAL_P90_MS),
                       ("p99_ms", GOAL_P99_MS)):
        d, m = med("direct", "1000 rps", attr), med("mesh", "1000 rps", attr)
        rows.append([f"{attr[:3]} @ 1000 RPC/s", f"{d:.2f} ms", f"{m:.2f} ms",
                     f"{m / d:.2f}x (+{m - d:.2f} ms)", f"+{goal} ms: {mark(m - d <= goal)}"])
    sd, sm = med("direct", "saturation", "rps"), med("mesh", "saturation", "rps")
    rows.append(["saturation (c=32)", f"{sd:,.0f} RPC/s", f"{sm:,.0f} RPC/s", f"{sm / sd:.2f}x",
                 f">= {GOAL_SATURATION}x: {mark(sm / sd >= GOAL_SATURATION)}"])
    report.table(["measure", "direct", "two sidecars", "mesh / direct", "goal"], rows)
    errors = sum(r.errors for r in runs)
    report.add()
    report.add(f"ghz runs: {len(runs)}, non-OK answers: {errors}")

    report.add()
    report.add("## 2. One Python service process")
    report.add()
    report.add(f"catalog-1 alone, GetProduct, ghz c=32 on one connection: {sd:,.0f} RPC/s "
               f"(goal >= {GOAL_PYTHON_RPS:,} on one core: {mark(sd >= GOAL_PYTHON_RPS)}; "
               "here ghz and the Envoys share the same two cores with everyone else)")

    report.add()
    report.add("## 3. Memory (RSS, MB) of the overhead mesh")
    report.add()
    rows = [[name, f"{idle.get(name, 0):.1f}", f"{loaded.get(name, 0):.1f}"]
            for name in sorted(idle)]
    report.table(["process", "idle", "after the load"], rows)
    envoys = [v for k, v in idle.items() if k.endswith("-sidecar")]
    if envoys:
        report.add()
        report.add(f"largest idle sidecar Envoy: {max(envoys):.1f} MB (goal < "
                   f"{GOAL_ENVOY_IDLE_MB} MB: {mark(max(envoys) < GOAL_ENVOY_IDLE_MB)})")


def external(report: Report, title: str, script: str, args: list[str], keep: tuple[str, ...],
             timeout: int) -> None:
    """Run another engineer's benchmark and keep its summary lines."""
    report.add()
    report.add(f"## {title}")
    report.add()
    path = ROOT / "bench" / script
    if not path.exists():
        report.add(f"(bench/{script} is not there yet: skipped)")
        return
    sys.stderr.write(f"[bench] {script} {' '.join(args)}\n")
    module = f"bench.{path.stem}"
    try:
        result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        report.add(f"(bench/{script} did not finish within {timeout}s)")
        return
    sys.stderr.write(result.stderr[-2000:])
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith(keep)]
    report.add("```")
    for line in lines or result.stdout.splitlines()[-15:]:
        report.add(line)
    report.add("```")
    if result.returncode != 0:
        report.add(f"(exit code {result.returncode}; stderr tail: "
                   f"{result.stderr.strip().splitlines()[-1:] or ['-']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per ghz run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-edge", action="store_true")
    parser.add_argument("--skip-events", action="store_true")
    args = parser.parse_args(argv)
    report = Report()
    started = time.monotonic()
    load = os.getloadavg()
    report.add(f"# meshmart benchmark report ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
    report.add()
    report.add(f"{os.cpu_count()} cores; load average at the start {load[0]:.1f} "
               f"(other work on the machine shows up in every absolute figure; the ratios "
               f"are measured side by side, round by round)")
    overhead(report, args.duration, args.rounds)
    if not args.skip_edge:
        external(report, "4. The edge: REST vs gRPC through the same Envoy",
                 "edge_rest_vs_grpc.py", ["--duration", str(args.duration), "--rounds", "1"],
                 ("path", "grpc", "rest", "REST", "gRPC", "edge"), timeout=900)
        report.add("(goal: REST through the edge >= 0.85x gRPC through the same Envoy)")
    if not args.skip_events:
        external(report, "5. Events: outbox commit -> JetStream -> consumer", "events.py",
                 ["--events", "1000", "--rate", "200"], ("1.", "2.", "3.", "CPU", "relay"),
                 timeout=300)
    report.add()
    report.add(f"took {time.monotonic() - started:.0f}s; load average at the end "
               f"{os.getloadavg()[0]:.1f}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(report.lines) + "\n")
    sys.stdout.write(f"\nwritten to {REPORT.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
