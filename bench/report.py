"""`make bench`: what the mesh costs, measured side by side in one run, as a short report.

    .venv/bin/python -m bench.report [--duration 8] [--rounds 2] [--skip-edge] [--skip-events]

1. Mesh overhead (bench/mesh_overhead.py's mesh and ghz runs): catalog.GetProduct direct,
   through a bare Envoy pair (bench/bare_pair.py) and through two Consul sidecars (mTLS),
   p50/p90/p99 at 300 and 1000 RPC/s (bench/goals.toml [sidecar_pair]) and RPC/s at
   saturation, interleaved round by round; medians, what each pair adds, and the Consul
   pair's added over the bare pair's (issue 22 goal 2).
2. One Python service process: catalog alone (no mesh), ghz at saturation with 32
   concurrent calls on one connection and at 600 RPC/s, with the production defaults
   (tracing at the mesh's sampling, RED metrics, access log) against a bare grpc.aio
   server of the same call, interleaved round by round (kit / bare: issue 22 goal 1),
   and with tracing off; CPU per call from /proc (bench/catalog_cpu.py), and where the
   kit's CPU goes (cProfile of the process, grouped: grpc.aio's core, OpenTelemetry, the
   kit, structlog, the servicer, asyncio).
3. The edge: GET product as REST through the edge vs gRPC through the same Envoy vs gRPC
   straight to catalog (bench/edge_rest_vs_grpc.py, which starts the whole shop).
4. PlaceOrder, the whole saga, as REST through the edge: orders/s and p99, in the same
   shop (bench/place_order.py).
5. Memory: RSS of every process of that shop (edge Envoy, each sidecar, Consul, NATS,
   each service) at idle and its peak under the load of parts 3 and 4.
6. Events: outbox commit -> JetStream -> consumer commit + ack, events/s per Python core
   and lag p99 at 200 events/s, the kit against a bare loop of the same flow (issue 22
   goal 5, bench/events.py).
7. Tuning, before/after: bench/TUNING.md, hand-written from A/B runs, included verbatim.

Each part's goal from bench/goals.toml (docs/design.md says what each is for) is printed
beside its figure, and a chart of the side-by-side figures with their goals is drawn
(matplotlib). The report goes to stdout and to bench/REPORT.md, the chart to
bench/report.png (both committed, so readers see numbers without running it). Every mesh
and process a part starts is stopped by that part (also on failure). Figures from a
loaded two-core machine are noisy: the ratios, measured in one run, are what to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import catalog_cpu, chart, mesh_overhead
from bench.goals import GOALS
from harness.host import free_mesh_address
from tools.mesh import control
from tools.mesh.observability import DEFAULT_TRACE_SAMPLE_RATIO
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT

REPORT = ROOT / "bench" / "REPORT.md"
CHART = ROOT / "bench" / "report.png"
TUNING = ROOT / "bench" / "TUNING.md"

GOAL_P50_MS = GOALS.p50_added_ms
GOAL_P90_MS = GOALS.p90_added_ms
GOAL_P99_MS = GOALS.p99_added_ms
GOAL_SATURATION = GOALS.saturation_ratio
GOAL_PYTHON_RPS = GOALS.python_rpc_per_core
GOAL_KIT_OVER_BARE = GOALS.kit_over_bare
GOAL_KIT_OVER_BARE_AT_RATE = GOALS.kit_over_bare_at_rate
AT_RATE_RPS = GOALS.at_rate_rps
GOAL_ENVOY_IDLE_MB = GOALS.envoy_idle_mb
GOAL_REST_GRPC = GOALS.rest_over_grpc


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    # Figures for the chart (bench/chart.py), by part.
    figures: dict[str, Any] = field(default_factory=dict)
    # One row per goal, from the figures each part prints: the table at the top.
    goals: list[list[str]] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.add("| " + " | ".join(row) + " |")

    def goal(self, what: str, measured: str, goal: str, meets: bool | None,
             baseline: str = "") -> None:
        """A row of "Goals at a glance": the figure a part measured against its goal, with
        the bare figure it is measured against (how close to this machine's limit);
        ``meets`` None when this run could not tell (a ratio over a baseline lost in noise)."""
        self.goals.append([what, measured, baseline or "-", goal,
                           "unread (noise)" if meets is None else mark(meets)])

    def glance(self) -> list[str]:
        """The table of every goal's row, to stand at the top of the report."""
        rows = ["## Goals at a glance", "",
                "Each figure from its part below, measured in this run; the baseline is the "
                "bare figure beside it (bare grpc.aio, a bare Envoy pair, direct calls).", "",
                "| what | measured | baseline | goal | |", "|---|---|---|---|---|"]
        rows += ["| " + " | ".join(row) + " |" for row in self.goals]
        return rows if self.goals else []


def mark(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def overhead(report: Report, duration: int, rounds: int) -> None:
    """Part 1: catalog.GetProduct direct, through a bare Envoy pair and through two Consul
    sidecars, interleaved (bench/mesh_overhead.py); issue 22 goal 2's rows."""
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-report-"))
    topology = mesh_overhead.bench_topology()
    address = free_mesh_address(topology, first=3)
    plan = MeshPlan(topology=topology, address=address, run_dir=run_dir,
                    envoy_concurrency=topology.rules.envoy_concurrency,
                    extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
    rates = list(GOALS.sidecar_rates)
    sys.stderr.write(f"[bench] overhead mesh on {plan.address} ({run_dir})\n")
    load_start = os.getloadavg()[0]
    try:
        control.up(plan, out=sys.stderr, check_entries=False)
        with mesh_overhead.bare_pair(plan) as bare:
            runs = mesh_overhead.measure(
                plan, f"--concurrency {plan.envoy_concurrency}", duration, rounds, rates=rates,
                bare=bare.target)
    finally:
        mesh_overhead.tear_down(plan, run_dir)
    load_end = os.getloadavg()[0]

    def med(path: str, mode: str, attr: str) -> float:
        return mesh_overhead.median_of(runs, path, mode, attr)

    def added(path: str, mode: str, attr: str) -> float:
        return mesh_overhead.added(runs, path, mode, attr)

    report.add()
    report.add(f"## 1. Mesh overhead: catalog.GetProduct direct, a bare Envoy pair, two Consul "
               f"sidecars (mTLS), Envoy --concurrency {plan.envoy_concurrency}, medians of "
               f"{rounds} interleaved rounds of {duration}s")
    report.add()
    report.add("The bare pair (bench/bare_pair.py) is the same hop through two Envoys of the "
               "same binary from static bootstraps: HTTP/2, the router only, no TLS, one "
               "worker each, in front of the same catalog process. Added: a path's run minus "
               "the direct run of the same round (median over rounds). Issue 22 goal 2: the "
               f"Consul pair adds at most {GOALS.sidecar_added_over_bare}x what the bare pair "
               f"adds; load average {load_start:.1f} at the start, {load_end:.1f} at the end.")
    report.add()
    rows = []
    latency: dict[str, dict[str, tuple[float, float, float]]] = {}
    for rate in rates:
        mode, label = f"{rate} rps", f"{rate} RPC/s"
        for attr, goal in (("p50_ms", GOAL_P50_MS), ("p90_ms", GOAL_P90_MS),
                           ("p99_ms", GOAL_P99_MS)):
            d, b, m = (med(path, mode, attr) for path in ("direct", "bare", "mesh"))
            ba, ma = added("bare", mode, attr), added("mesh", mode, attr)
            ratio = mesh_overhead.pair_ratio(ma, ba)
            latency.setdefault(label, {})[attr[:3]] = (d, m, goal)
            pair_goal = GOALS.sidecar_added_over_bare
            # A pair that added nothing measurable (its figure at or below direct's: noise)
            # leaves the ratio unread, neither met nor missed.
            readable = ba > 0 and ma > 0
            shown = (f"{ratio:.2f}x" if readable else
                     f"unread ({'bare pair' if ba <= 0 else 'Consul pair'} added <= 0)")
            verdict = (mark(ratio <= pair_goal) if readable else "unread")
            rows.append([f"{attr[:3]} @ {label}", f"{d:.2f} ms", f"{b:.2f} ms ({ba:+.2f})",
                         f"{m:.2f} ms ({ma:+.2f})", shown,
                         f"<= {pair_goal}x: {verdict}" if attr != "p90_ms"
                         else "", f"+{goal} ms: {mark(ma <= goal)}"])
            if attr != "p90_ms":
                report.goal(f"two Consul sidecars' added {attr[:3]} @ {label} over a bare "
                            "Envoy pair's (1.)",
                            f"{shown} ({ma:+.2f} ms)", f"<= {pair_goal}x",
                            ratio <= pair_goal if readable else None,
                            baseline=f"bare pair {ba:+.2f} ms")
    sd, sb, sm = (med(path, "saturation", "rps") for path in ("direct", "bare", "mesh"))
    rb, rm = (mesh_overhead.saturation_ratio(runs, path) for path in ("bare", "mesh"))
    rows.append(["saturation (c=32)", f"{sd:,.0f} RPC/s", f"{sb:,.0f} RPC/s ({rb:.2f}x)",
                 f"{sm:,.0f} RPC/s ({rm:.2f}x)", f"{rm / rb:.2f}x",
                 f">= {GOALS.sidecar_saturation}x direct: {mark(rm >= GOALS.sidecar_saturation)}",
                 f">= {GOAL_SATURATION}x direct: {mark(rm >= GOAL_SATURATION)}"])
    report.goal("two Consul sidecars' RPC/s at saturation over direct (1.)",
                f"{rm:.2f}x ({sm:,.0f} RPC/s)", f">= {GOALS.sidecar_saturation}x",
                rm >= GOALS.sidecar_saturation,
                baseline=f"direct {sd:,.0f} RPC/s; bare pair {rb:.2f}x")
    report.table(["measure", "direct", "bare Envoy pair (added)", "two Consul sidecars (added)",
                  "Consul added / bare added", "goal 2 (issue 22)",
                  "goal: added ms (bench/goals.toml)"], rows)
    report.figures["overhead"] = {"latency": latency, "saturation": (sd, sm),
                                  "goal_saturation": GOAL_SATURATION}
    report.add()
    report.add(f"{rates[-1]} RPC/s is {rates[-1] / sd:.0%} of what the direct path carries at "
               f"saturation here and {rates[-1] / sm:.0%} of the mesh path's: where that is "
               f"near or above 100%, its latencies are queueing.")
    errors = [f"{r.path} {r.mode}: {r.errors}" for r in runs if r.errors != "0"]
    report.add()
    report.add(f"ghz runs: {len(runs)}; failed calls: {'; '.join(errors) or 'none'} (not "
               "counted: the calls a timed ghz run cuts off itself when it closes its "
               "connection at the end, harness/ghz.failed_calls)")


# cProfile's tottime per source, grouped (first match wins).
PROFILE_GROUPS = (
    ("OpenTelemetry instrumentation", ("opentelemetry",)),
    # isinstance() against typing.Protocol classes: on the server path OpenTelemetry's
    # gRPC method filter checks grpc.aio.ClientCallDetails this way on every call.
    ("typing.Protocol isinstance checks", ("typing.py",)),
    ("JSON encoding (log lines)", ("json/",)),
    ("structlog (access log)", ("structlog",)),
    ("the kit (interceptors, metrics, context)", ("services/kit",)),
    ("the servicer (catalog)", ("services/catalog",)),
    ("prometheus-client", ("prometheus_client",)),
    ("protobuf", ("google/protobuf",)),
    ("asyncio event loop", ("asyncio", "selectors")),
    ("grpc.aio core (Cython callbacks, in Context.run)", ("_contextvars.Context", "grpc")),
)


def python_process(report: Report, duration: int, rounds: int) -> None:
    """catalog alone on a free loopback address against a bare grpc.aio server of the same
    call (interleaved rounds): CPU per call at saturation and at 600 RPC/s; tracing off
    once; then a profile of where a call's CPU goes."""
    kit = catalog_cpu.Variant("the kit")
    bare = catalog_cpu.Variant("bare grpc.aio", bare=True)
    ratio = DEFAULT_TRACE_SAMPLE_RATIO
    runs = catalog_cpu.ab([kit, bare], rounds, duration, rates=(AT_RATE_RPS,))
    results: dict[str, catalog_cpu.Sample] = {
        "tracing off": catalog_cpu.measure(kit, duration, tracing=False)[0],
        f"tracing on (sample ratio {ratio:g}, the mesh's)": next(
            r for r in runs[kit.name] if r.mode == catalog_cpu.SATURATED),
    }
    with tempfile.TemporaryDirectory(prefix="meshmart-profile-") as tmp:
        catalog_cpu.profile(kit, duration, Path(tmp) / "profile", tracing=True)
        shares, total_cpu = _profile_shares(Path(tmp) / "profile")
    report.add()
    report.add("## 2. One Python service process (catalog alone, GetProduct, ghz c=32)")
    report.add()
    report.add(f"The kit with its production defaults (tracing at sample ratio {ratio:g}, "
               f"RED metrics, the access log at INFO) against a bare grpc.aio server "
               f"answering the same message (bench/bare_catalog.py), CPU per call, medians "
               f"of {rounds} interleaved rounds of {duration}s:")
    report.add()
    goal_rows = []
    for mode, goal in ((catalog_cpu.SATURATED, GOAL_KIT_OVER_BARE),
                       (f"{AT_RATE_RPS} RPC/s", GOAL_KIT_OVER_BARE_AT_RATE)):
        b = catalog_cpu.median_cpu(runs[bare.name], mode)
        k = catalog_cpu.median_cpu(runs[kit.name], mode)
        goal_rows.append([mode, f"{b:.3f} ms", f"{k:.3f} ms", f"{k / b:.2f}x",
                          f"<= {goal}x: {mark(k / b <= goal)}"])
        report.goal(f"the kit's CPU per call over bare grpc.aio, {mode} (2.)",
                    f"{k / b:.2f}x ({k:.3f} ms)", f"<= {goal}x", k / b <= goal,
                    f"bare grpc.aio {b:.3f} ms")
    report.table(["CPU per call", "bare grpc.aio", "the kit", "kit / bare", "goal"], goal_rows)
    report.add()
    rows = [[label, f"{r.rps:,.0f}", f"{r.cpu_ms:.3f} ms", f"{1000 / r.cpu_ms:,.0f}"]
            for label, r in results.items()]
    report.table(["kit tracing", "RPC/s (ghz on the same 2 cores)", "CPU per call",
                  "RPC/s per core (1 / CPU per call)"], rows)
    best = max(1000 / r.cpu_ms for r in results.values())
    report.figures["python"] = {label: 1000 / r.cpu_ms for label, r in results.items()}
    report.add()
    report.add(f"goal >= {GOAL_PYTHON_RPS:,} RPC/s on one core: {mark(best >= GOAL_PYTHON_RPS)} "
               f"(best {best:,.0f}; CPU time on a busy box is inflated too)")
    report.add()
    report.add(f"where the CPU of the calls goes (cProfile over {duration}s of load, tracing on, "
               f"{total_cpu:.1f}s profiled; profiling slows everything, read the shares):")
    report.add()
    report.table(["part", "share"], [[name, f"{share:.0%}"] for name, share in shares])


def _profile_shares(path: Path) -> tuple[list[tuple[str, float]], float]:
    stats = pstats.Stats(str(path))
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        group = next((name for name, needles in PROFILE_GROUPS
                      if any(n in where for n in needles)), "other")
        if "epoll" in where:
            continue  # waiting, not working
        totals[group] = totals.get(group, 0.0) + tottime
    total = sum(totals.values())
    ordered = sorted(totals.items(), key=lambda kv: -kv[1])
    return [(name, t / total) for name, t in ordered], total


def run_bench(script: str, args: list[str], timeout: int) -> tuple[str, str, int]:
    """Run a benchmark of bench/ as a module: (stdout, stderr, exit code)."""
    sys.stderr.write(f"[bench] {script} {' '.join(args)}\n")
    try:
        result = subprocess.run([sys.executable, "-m", f"bench.{Path(script).stem}", *args],
                                cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                check=False)
    except subprocess.TimeoutExpired:
        return "", f"did not finish within {timeout}s", -1
    sys.stderr.write(result.stderr[-2000:])
    return result.stdout, result.stderr, result.returncode


def shop(report: Report, duration: int) -> None:
    """Parts 3-5 from one start of the whole shop (bench/edge_rest_vs_grpc.py --json)."""
    with tempfile.TemporaryDirectory(prefix="meshmart-report-edge-") as tmp:
        out = Path(tmp) / "edge.json"
        stdout, stderr, code = run_bench(
            "edge_rest_vs_grpc.py",
            ["--duration", str(duration), "--rounds", "1", "--json", str(out)], timeout=1200)
        data = json.loads(out.read_text()) if out.exists() else None
    if data is None:
        report.add()
        report.add("## 3-5. The edge, PlaceOrder, memory of the whole shop")
        report.add()
        report.add(f"(bench/edge_rest_vs_grpc.py failed, exit code {code}; stderr tail:)")
        report.add("```")
        for line in (stderr.strip().splitlines() or stdout.strip().splitlines())[-12:]:
            report.add(line)
        report.add("```")
        return
    edge(report, data)
    orders(report, data)
    memory(report, data)
    if code != 0:
        report.add()
        report.add(f"(bench/edge_rest_vs_grpc.py exit code {code})")


def edge(report: Report, data: dict[str, Any]) -> None:
    med: dict[str, dict[str, float]] = data["medians"]
    report.add()
    report.add(f"## 3. The edge: GET product as REST through the edge vs gRPC through the "
               f"same Envoy vs gRPC direct ({data['connections']} connections, saturation, "
               f"{data['duration']}s per path, the whole shop up)")
    report.add()
    paths = (
        ("grpc-direct", "GetProduct", "gRPC straight to catalog-1 (no mesh)"),
        ("grpc-edge", "GetProduct", "gRPC through the edge (edge -> its sidecar -> mTLS -> "
                                    "catalog's sidecar)"),
        ("rest-edge", "GetProduct", "REST through the edge, cache bypassed (transcoded)"),
        ("rest-cached", "GetProduct", "REST through the edge, answered by its cache"),
        ("grpc-stock-direct", "GetStock", "gRPC straight to inventory-1"),
        ("grpc-stock", "GetStock", "gRPC through the edge"),
        ("rest-stock", "GetStock", "REST through the edge (never cached)"),
    )
    rows = [[rpc, f"`{name}`", what, f"{med[name]['rps']:,.0f}", f"{med[name]['p50_ms']:.2f}",
             f"{med[name]['p99_ms']:.2f}"] for name, rpc, what in paths if name in med]
    report.table(["RPC", "path", "how", "req/s", "p50 ms", "p99 ms"], rows)
    errors = [f"{r['path']}: {r['errors']}" for r in data["runs"] if r["errors"]]
    report.add()
    report.add(f"failed requests: {'; '.join(errors) or 'none'}")

    def ratio(a: str, b: str) -> float:
        return med[a]["rps"] / med[b]["rps"]

    rest_grpc = ratio("rest-edge", "grpc-edge")
    stock = ratio("rest-stock", "grpc-stock")
    for rpc, value, a, b in (("GetProduct", rest_grpc, "rest-edge", "grpc-edge"),
                             ("GetStock", stock, "rest-stock", "grpc-stock")):
        report.goal(f"REST / gRPC req/s through the same edge, {rpc} (3.)",
                    f"{value:.2f}x ({med[a]['rps']:,.0f} req/s)", f">= {GOAL_REST_GRPC}x",
                    value >= GOAL_REST_GRPC, f"gRPC through the edge {med[b]['rps']:,.0f} req/s")
    report.add()
    report.table(["ratio of req/s", "value", "goal"], [
        ["REST / gRPC through the same edge, GetProduct (cache bypassed)", f"{rest_grpc:.2f}x",
         f">= {GOAL_REST_GRPC}x: {mark(rest_grpc >= GOAL_REST_GRPC)}"],
        ["REST / gRPC through the same edge, GetStock", f"{stock:.2f}x",
         f">= {GOAL_REST_GRPC}x: {mark(stock >= GOAL_REST_GRPC)}"],
        ["gRPC through the edge / gRPC direct, GetProduct",
         f"{ratio('grpc-edge', 'grpc-direct'):.2f}x", "none in docs/design.md"],
        ["REST through the edge / gRPC direct, GetProduct",
         f"{ratio('rest-edge', 'grpc-direct'):.2f}x "
         f"(cached: {ratio('rest-cached', 'grpc-direct'):.2f}x)", "none in docs/design.md"],
    ])
    report.figures["edge"] = {name: med[name]["rps"] for name, _, _ in paths if name in med}


def orders(report: Report, data: dict[str, Any]) -> None:
    # Imported here, so that this part's edits stay inside its own function.
    from tools.mesh.edge import api as edge_api

    result = data.get("place_order")
    report.add()
    report.add("## 4. PlaceOrder, the whole saga, as REST through the edge")
    report.add()
    if result is None:
        report.add(f"(failed: {data['place_order_error']})" if data.get("place_order_error")
                   else "(skipped)")
        report.goal("PlaceOrder orders/s at saturation (4.)", "not measured",
                    f">= {GOALS.orders_per_second:g}", False)
        return
    limit = result.get("edge_limit_per_s")
    bucket = (f"the edge's shared PlaceOrder bucket at {limit:g}/s for the run "
              f"(production: {edge_api.place_order_rate():g}/s, tools/mesh/edge/api.py "
              f"PLACE_ORDER)" if limit else "the edge's production PlaceOrder bucket")
    report.add(f"`POST /api/v1/users/{{id}}/orders` with a bearer token, one order per user "
               f"(its own cart with one item, its own idempotency key): edge -> order "
               f"(reserve stock, charge the card, confirm, outbox) over mTLS. "
               f"{result['prepared']} users prepared before the timing "
               f"({result['prepare_seconds']:.0f}s); {bucket}.")
    report.add()
    rows = []
    for phase in (result["saturation"], result["at_rate"]):
        if phase is None:
            continue
        how = (f"saturation: {phase['workers']} clients, closed loop" if phase["workers"]
               else f"open loop at {phase['rate']:g} orders/s (half of saturation)")
        failed = ", ".join(f"{c} {n}" for c, n in phase["failed"].items()) or "none"
        rows.append([how, f"{phase['orders']} in {phase['seconds']:.1f}s",
                     f"{phase['orders_per_s']:.1f}", f"{phase['p50_ms']:.0f}",
                     f"{phase['p90_ms']:.0f}", f"{phase['p99_ms']:.0f}",
                     f"{phase['confirmed']} / {phase['cancelled']}", failed])
    report.table(["load", "orders", "orders/s", "p50 ms", "p90 ms", "p99 ms",
                  "confirmed / cancelled", "failed"], rows)
    report.add()
    audit = result.get("audit")
    consistent = False
    if audit is not None:
        problems = {"unfinished": audit["unfinished"], "charged twice": audit["charged_twice"],
                    "confirmed without exactly one capture":
                        audit["confirmed_without_one_capture"],
                    "cancelled with a capture left": audit["cancelled_still_captured"]}
        found = "; ".join(f"{name}: {n}" for name, n in problems.items() if n)
        consistent = not found
        report.add(f"audit of order's and payment's databases after the run: {audit['orders']} "
                   f"orders, {audit['confirmed']} CONFIRMED, {audit['cancelled']} CANCELLED; "
                   f"{found or 'every order ended, none charged twice'}")
        report.add()
    sat, slow = result["saturation"], result["at_rate"]
    report.add(f"goal (issue 22 goal 3): >= {GOALS.orders_per_second:g} orders/s at saturation, "
               f"p99 <= {GOALS.orders_p99_ms_at_half:g} ms at half that rate, every order "
               f"CONFIRMED or CANCELLED and none charged twice")
    report.goal("PlaceOrder orders/s at saturation, edge -> saga (4.)",
                f"{sat['orders_per_s']:.1f} ({sat['workers']} clients)",
                f">= {GOALS.orders_per_second:g}",
                sat["orders_per_s"] >= GOALS.orders_per_second and consistent,
                baseline=f"edge bucket {limit:g}/s" if limit else "")
    if slow is not None:
        report.goal(f"PlaceOrder p99 at half that rate ({slow['rate']:g}/s) (4.)",
                    f"{slow['p99_ms']:.0f} ms", f"<= {GOALS.orders_p99_ms_at_half:g} ms",
                    slow["p99_ms"] <= GOALS.orders_p99_ms_at_half and consistent)
    else:
        report.goal("PlaceOrder p99 at half the saturation rate (4.)", "not measured "
                    "(too few users left)", f"<= {GOALS.orders_p99_ms_at_half:g} ms", False)
    report.figures["orders"] = result


def _kind(name: str) -> str:
    if name.endswith("-sidecar"):
        return "Envoy (sidecar)"
    if name.startswith("edge-"):
        return "Envoy (edge)"
    if name == "consul":
        return "Consul"
    if name.startswith("nats-"):
        return "NATS"
    if name in ("prometheus", "zipkin"):
        return "observability"
    return "service"


def memory(report: Report, data: dict[str, Any]) -> None:
    idle: dict[str, float] = data["rss_idle"]
    anon: dict[str, float] = data.get("rss_idle_anon", {})
    peak: dict[str, float] = data["rss_peak"]
    order = ("Envoy (edge)", "Envoy (sidecar)", "Consul", "NATS", "service", "observability")
    names = sorted(idle, key=lambda n: (order.index(_kind(n)), n))
    report.add()
    report.add(f"## 5. Memory (RSS, MB) of the whole shop: idle (its processes under "
               f"{data['idle_cores']:.2f} cores) and the peak under the load of parts 3 and 4 "
               "(sampled every 0.5 s)")
    report.add()
    rows = []
    for name in names:
        envoy = _kind(name).startswith("Envoy")
        goal = (f"< {GOAL_ENVOY_IDLE_MB} MB idle: {mark(idle[name] < GOAL_ENVOY_IDLE_MB)}"
                if envoy else "none in docs/design.md")
        rows.append([name, _kind(name), f"{idle[name]:.1f}",
                     f"{anon[name]:.1f}" if name in anon else "-",
                     f"{peak.get(name, 0.0):.1f}", goal])
    report.table(["process", "what", "idle RSS", "of it anonymous", "peak RSS under load",
                  "goal"], rows)
    envoys = {n: v for n, v in idle.items() if _kind(n).startswith("Envoy")}
    largest = max(envoys, key=envoys.__getitem__)
    report.goal("the largest idle Envoy's RSS (5.)", f"{envoys[largest]:.1f} MB ({largest})",
                f"< {GOAL_ENVOY_IDLE_MB} MB", envoys[largest] < GOAL_ENVOY_IDLE_MB)
    report.add()
    report.add(f"largest idle Envoy: {largest} {envoys[largest]:.1f} MB RSS (goal < "
               f"{GOAL_ENVOY_IDLE_MB} MB: {mark(envoys[largest] < GOAL_ENVOY_IDLE_MB)}), "
               f"{anon.get(largest, 0.0):.1f} MB of it anonymous. An Envoy's RSS counts the "
               "pages of its binary mapped from the page cache (the rest of RSS), which every "
               f"Envoy on the machine shares: the {len(envoys)} Envoys hold "
               f"{sum(anon.get(n, 0.0) for n in envoys):.0f} MB of their own "
               f"(anonymous) memory, not {sum(envoys.values()):.0f} MB.")
    report.figures["memory"] = {"idle": idle, "anon": anon, "peak": peak,
                                "kinds": {n: _kind(n) for n in names},
                                "goal_envoy": GOAL_ENVOY_IDLE_MB}


def events(report: Report) -> None:
    """Part 6 (issue 22 goal 5): bench/events.py, the kit against the bare loop of the same
    flow, 3 rounds interleaved, with the kit's production tracing."""
    title = "6. Events: outbox commit -> JetStream -> consumer commit + ack"
    rate = GOALS.events_lag_rate
    with tempfile.TemporaryDirectory(prefix="meshmart-report-events-") as tmp:
        out = Path(tmp) / "events.json"
        stdout, stderr, code = run_bench("events.py", [
            "--events", "3000", "--rate", str(rate), "--rounds", "3", "--json", str(out)],
            timeout=900)
        data = json.loads(out.read_text()) if out.exists() else None
    report.add()
    report.add(f"## {title}")
    report.add()
    if data is None:
        report.add(f"(bench/events.py failed, exit code {code}; stderr tail:)")
        report.add("```")
        for line in (stderr.strip().splitlines() or stdout.strip().splitlines())[-12:]:
            report.add(line)
        report.add("```")
        return
    kit, bare = data["summary"]["kit"], data["summary"]["bare"]
    load = data["load_average"]
    report.add(f"bench/events.py, in one process each round: the kit's Outbox (commits in "
               f"db.run), OutboxRelay and EventConsumer (tracing at the mesh's sampling), "
               f"against a bare loop of the same flow on nats-py and sqlite3 (a commit per "
               f"event on each side, publish with ack, ack after the consumer's commit; no "
               f"relay, metrics, logs or tracing). {data['events']:,} events per throughput "
               f"run, {data['lag_events']:,} at {data['rate']:.0f}/s for the lag; medians of "
               f"{len(data['rounds']) // 2} rounds, interleaved; load average {load[0]:.1f} "
               f"-> {load[1]:.1f}. Per core = events over the process's CPU seconds (every "
               f"thread), the capacity of one dedicated core whatever else runs.")
    report.add()

    def row(label: str, f: dict[str, float]) -> list[str]:
        return [label, f"{f['per_second']:,.0f}", f"{f['per_core']:,.0f}",
                f"{f['cpu_ms_per_event']:.3f} ms", f"{f['server_ms_per_event']:.3f} ms",
                f"{f['lag_p50_ms']:.2f} ms", f"{f['lag_p99_ms']:.2f} ms",
                f"{f['publish_p50_ms']:.2f} / {f['publish_p99_ms']:.2f} ms"]

    report.table(["", "events/s wall", "events/s per Python core", "CPU per event",
                  "nats-server CPU per event", f"lag p50 at {rate}/s", f"lag p99 at {rate}/s",
                  "publish-with-ack p50 / p99"], [row("the kit", kit), row("bare", bare)])
    report.add()
    report.add(f"kit / bare per core: {kit['per_core'] / bare['per_core']:.2f}x")
    report.goal("events/s per Python core, end to end (goal 5)", f"{kit['per_core']:,.0f}",
                f">= {GOALS.events_per_core:,.0f}", kit["per_core"] >= GOALS.events_per_core,
                baseline=f"bare loop {bare['per_core']:,.0f}")
    report.goal(f"event lag p99 at {rate}/s, commit -> consumer's commit (goal 5)",
                f"{kit['lag_p99_ms']:.1f} ms", f"<= {GOALS.events_lag_p99_ms:g} ms",
                kit["lag_p99_ms"] <= GOALS.events_lag_p99_ms,
                baseline=f"bare loop {bare['lag_p99_ms']:.1f} ms")
    if code != 0:
        report.add(f"(bench/events.py exit code {code})")


def tuning(report: Report) -> None:
    """bench/TUNING.md as it is, under this report's heading instead of its own title."""
    report.add()
    report.add("## 7. Tuning, before/after (bench/TUNING.md, verbatim)")
    report.add()
    if not TUNING.exists():
        report.add("(bench/TUNING.md is missing)")
        return
    lines = TUNING.read_text().rstrip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    for line in lines:
        report.add(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per ghz run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-edge", action="store_true",
                        help="skip parts 3-5 (the whole shop)")
    parser.add_argument("--skip-events", action="store_true")
    parser.add_argument("--output", type=Path, default=REPORT,
                        help="the report (default bench/REPORT.md, its chart bench/report.png; "
                             "elsewhere the chart goes beside it, as NAME.png)")
    parser.add_argument("--note", default="",
                        help="a line for the header, e.g. what else ran on the machine")
    args = parser.parse_args(argv)
    png = CHART if args.output == REPORT else args.output.with_suffix(".png")
    report = Report()
    started = time.monotonic()
    load = os.getloadavg()
    report.add(f"# meshmart benchmark report ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
    report.add()
    report.add(f"Written by `make bench` (bench/report.py). {os.cpu_count()} cores; load "
               f"average at the start {load[0]:.1f} (other work on the machine shows up in "
               f"every absolute figure; the ratios are measured side by side, round by round)."
               f" The chart below draws the side-by-side figures with their goals "
               f"({png.name}, from the same run).")
    if args.note:
        report.add()
        report.add(f"Note: {args.note}")
    report.add()
    report.add(f"![the side-by-side figures of this report, each with its goal]({png.name})")
    glance_at = len(report.lines)
    overhead(report, args.duration, args.rounds)
    python_process(report, max(3, args.duration // 2), args.rounds)
    if args.skip_edge:
        report.add()
        report.add("## 3-5. The edge, PlaceOrder, memory of the whole shop")
        report.add()
        report.add("(skipped: --skip-edge)")
    else:
        shop(report, args.duration)
    if not args.skip_events:
        events(report)
    tuning(report)
    end_load = os.getloadavg()[0]
    report.add()
    report.add(f"took {time.monotonic() - started:.0f}s; load average at the start "
               f"{load[0]:.1f}, at the end {end_load:.1f}")
    glance = report.glance()
    if glance:
        sys.stdout.write("\n" + "\n".join(glance) + "\n")
        report.lines[glance_at:glance_at] = ["", *glance]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(report.lines) + "\n")
    chart.draw(report.figures, png, title=f"meshmart make bench, "
               f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load "
               f"{load[0]:.1f} -> {end_load:.1f}")
    sys.stdout.write(f"\nwritten to {_shown(args.output)} and {_shown(png)}\n")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
