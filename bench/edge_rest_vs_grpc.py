"""What the edge's REST face costs: the same read as REST through the edge, as gRPC through
the same edge Envoy, and as gRPC straight to the service, measured in one run.

    .venv/bin/python bench/edge_rest_vs_grpc.py [--duration 8] [--rounds 2] [--connections 16]
        [--orders 240] [--skip-orders] [--skip-reads] [--place-order-limit N] [--json PATH]

Starts the whole shop on a free loopback address (the code path of `make up`, edge
included), waits until it is idle (its processes under 0.35 cores for 2 s, at most 60 s),
reads the RSS of every process of it (edge Envoy, sidecars, Consul, NATS, services,
Prometheus and Zipkin), then runs, interleaved round by round, at saturation with the same
number of connections:

  grpc-direct   ghz -> catalog-1:7110                         GetProduct (no mesh at all)
  grpc-edge     ghz -> edge:8080 -> edge sidecar -> mTLS -> catalog sidecar -> catalog
  rest-edge     wrk -> edge:8080 GET /api/v1/products/sku-1001, `cache-control: no-cache`
                (every request transcoded and sent on: the cache-miss path)
  rest-cached   wrk -> the same URL with the cache allowed (answered by the edge's cache)
  grpc-stock / rest-stock   the same pair for InventoryService.GetStock (never cached,
                one transcoding hop, so the plain price of REST over gRPC at the edge)

and prints requests/s, p50 and p99 per path (median over rounds) and the ratios. wrk
(HTTP/1.1, Debian package `wrk`) and ghz (HTTP/2) share the two cores with everything
else; each run is bounded in time.

Then PlaceOrder, the whole saga, as REST through the edge (bench/place_order.py):
orders/s at saturation and the latency percentiles, with --orders users prepared first,
and the audit of every order in order's and payment's databases afterwards. The edge runs
with the benchmark's own PlaceOrder bucket (--place-order-limit orders/s, default
place_order.EDGE_PLACE_ORDER_RATE; 0: the production one, api.PLACE_ORDER).

RSS of every process is sampled every half second through the load: the report gives
each one's idle figure and its peak under load. --json writes every figure for
bench/report.py. Tears the mesh down at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import place_order
from harness.ghz import ghz, latency_ms
from harness.host import free_mesh_address, settled
from tools.mesh import control
from tools.mesh.edge import api
from tools.mesh.edge.mesh import Edge
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import load_topology

PRODUCT = "sku-1001"


@dataclass(frozen=True)
class Run:
    path: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int




def grpc_run(target: str, call: str, payload: str, seconds: int, connections: int) -> Run:
    report = ghz(target, call, payload, concurrency=connections, seconds=seconds,
                 timeout=seconds * 5 + 60)
    # -z ends the run by closing the connection under the calls in flight, which ghz
    # counts as errors ("use of closed network connection"): those are not the server's.
    errors = sum(n for message, n in (report.get("errorDistribution") or {}).items()
                 if "use of closed network connection" not in message)
    return Run("", report["rps"], latency_ms(report, 50), latency_ms(report, 99), errors)


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, seconds: int, connections: int, headers: list[str]) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True,
                         timeout=seconds * 5 + 60).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * _UNIT[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    if errors:
        failed += sum(int(n) for n in re.findall(r"\d+", errors.group(0)))
    return Run("", rps, latency("50"), latency("99"), failed)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """VmRSS, or RssAnon: the process's own memory. The difference (RssFile) is mostly
    Envoy's binary mapped from the page cache, shared by every Envoy on the machine."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(pid: int) -> str:
    return f"{rss_mb(pid):.1f} MB RSS ({rss_mb(pid, 'RssAnon'):.1f} MB anonymous)"


def rss_all(procs: dict[str, int], field: str = "VmRSS") -> dict[str, float]:
    """program name -> VmRSS (or ``field``) in MB of each live process."""
    out = {}
    for name, pid in procs.items():
        try:
            out[name] = rss_mb(pid, field)
        except OSError:
            continue  # exited
    return out


class RssPeaks:
    """The highest RSS of each process, sampled every ``every`` seconds in a thread."""

    def __init__(self, procs: dict[str, int], every: float = 0.5) -> None:
        self.procs, self.every = procs, every
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, mb in rss_all(self.procs).items():
                self.peaks[name] = max(mb, self.peaks.get(name, 0.0))
            self._stop.wait(self.every)

    def __enter__(self) -> RssPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(plan: MeshPlan, edge: Edge, seconds: int, rounds: int, conns: int) -> list[Run]:
    a, port = plan.address, edge.settings.port
    catalog = plan.instance("catalog-1").grpc_target
    inventory = plan.instance("inventory-1").grpc_target
    get_product = "meshmart.catalog.v1.CatalogService/GetProduct"
    get_stock = "meshmart.inventory.v1.InventoryService/GetStock"
    product_url = f"http://{a}:{port}/api/v1/products/{PRODUCT}"
    stock_url = f"http://{a}:{port}/api/v1/stock?productIds={PRODUCT}"
    paths: dict[str, Callable[[int], Run]] = {
        "grpc-direct": lambda s: grpc_run(catalog, get_product,
                                          json.dumps({"product_id": PRODUCT}), s, conns),
        "grpc-edge": lambda s: grpc_run(f"{a}:{port}", get_product,
                                        json.dumps({"product_id": PRODUCT}), s, conns),
        "rest-edge": lambda s: wrk(product_url, s, conns, ["cache-control: no-cache"]),
        "rest-cached": lambda s: wrk(product_url, s, conns, []),
        "grpc-stock": lambda s: grpc_run(f"{a}:{port}", get_stock,
                                         json.dumps({"product_ids": [PRODUCT]}), s, conns),
        "rest-stock": lambda s: wrk(stock_url, s, conns, []),
        "grpc-stock-direct": lambda s: grpc_run(inventory, get_stock,
                                                json.dumps({"product_ids": [PRODUCT]}), s,
                                                conns),
    }
    for run in paths.values():  # warm up every path (connections, caches, JIT-less Python)
        run(2)
    runs = []
    for r in range(rounds):
        for name, run in paths.items():
            result = run(seconds)
            runs.append(Run(name, result.rps, result.p50_ms, result.p99_ms, result.errors))
            print(f"round {r + 1} {name:<18} {result.rps:>9.0f} req/s  p50 "
                  f"{result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}",
                  flush=True)
    return runs


def medians(runs: list[Run]) -> dict[str, dict[str, float]]:
    """path -> {rps, p50_ms, p99_ms}: the median over rounds of each."""
    return {path: {f: float(statistics.median(getattr(r, f) for r in runs if r.path == path))
                   for f in ("rps", "p50_ms", "p99_ms")}
            for path in dict.fromkeys(r.path for r in runs)}


def report(runs: list[Run]) -> None:
    def med(path: str, field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in runs if r.path == path))

    names = list(dict.fromkeys(r.path for r in runs))
    print("\npath                  req/s     p50 ms   p99 ms   (median over rounds)")
    for name in names:
        print(f"{name:<18} {med(name, 'rps'):>9.0f} {med(name, 'p50_ms'):>9.2f} "
              f"{med(name, 'p99_ms'):>8.2f}")

    def ratio(a: str, b: str) -> str:
        return f"{med(a, 'rps') / med(b, 'rps'):.2f}x"

    print(f"\nREST / gRPC through the same edge, GetProduct (cache bypassed): "
          f"{ratio('rest-edge', 'grpc-edge')}")
    print(f"REST / gRPC through the same edge, GetStock (one hop):          "
          f"{ratio('rest-stock', 'grpc-stock')}")
    print(f"REST through the edge / gRPC direct to catalog, GetProduct:     "
          f"{ratio('rest-edge', 'grpc-direct')} (cached: {ratio('rest-cached', 'grpc-direct')})")
    print(f"gRPC through the edge / gRPC direct, GetProduct:                "
          f"{ratio('grpc-edge', 'grpc-direct')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--orders", type=int, default=240,
                        help="users prepared for the PlaceOrder phase (one order each)")
    parser.add_argument("--order-workers", type=int, default=8,
                        help="clients of PlaceOrder's closed loop")
    parser.add_argument("--skip-orders", action="store_true")
    parser.add_argument("--skip-reads", action="store_true",
                        help="only the PlaceOrder phase (no GetProduct / GetStock paths)")
    parser.add_argument("--place-order-limit", type=int,
                        default=place_order.EDGE_PLACE_ORDER_RATE,
                        help="the edge's shared PlaceOrder bucket for this run, orders/s "
                             "(0: the production one)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--address", default=None, help="loopback address (default: free)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="the run directory of a mesh already up on --address (it is "
                             "stopped at the end all the same)")
    args = parser.parse_args()
    if not args.skip_reads and not shutil.which("wrk"):
        sys.stderr.write("wrk is missing: apt-get install wrk\n")
        return 2
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="meshmart-edge-bench-"))
    topology = load_topology()
    address = args.address or free_mesh_address(topology, first=20)
    plan = MeshPlan(topology=topology, address=address, run_dir=run_dir,
                    extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
    # The edge's wrapper reads it from the environment `up` starts supervisord in.
    if args.place_order_limit > 0:
        os.environ[api.PLACE_ORDER_RATE_SETTING] = str(args.place_order_limit)
    else:
        os.environ.pop(api.PLACE_ORDER_RATE_SETTING, None)
    edge = Edge(plan)
    edge_limit = api.place_order_rate(edge.policies)
    load_start = os.getloadavg()[0]
    # SIGTERM (e.g. `timeout`) must still run the teardown below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        control.up(plan, timeout=400, out=sys.stderr)
        procs = {p["name"]: int(p["pid"]) for p in Supervisor(plan).processes() if p["pid"]}
        busy = asyncio.run(settled(plan))
        idle, idle_anon = rss_all(procs), rss_all(procs, "RssAnon")
        print(f"idle (shop at {busy:.2f} cores): edge Envoy {memory(procs['edge-1'])}; its "
              f"sidecar {memory(procs['edge-1-sidecar'])}; catalog-1's sidecar "
              f"{memory(procs['catalog-1-sidecar'])}", flush=True)
        with RssPeaks(procs) as peaks:
            runs = ([] if args.skip_reads
                    else measure(plan, edge, args.duration, args.rounds, args.connections))
            if runs:
                report(runs)
            orders, orders_error = None, None
            if not args.skip_orders:
                print()
                try:
                    orders = place_order.measure(
                        f"http://{plan.address}:{edge.settings.port}",
                        plan.instance("user-1").grpc_target, orders=args.orders,
                        workers=args.order_workers, seconds=args.duration,
                        edge_limit_per_s=edge_limit,
                        # The audit reads the SQLite files (PostgreSQL: not audited).
                        data_dir=plan.data_dir if plan.database_engine == "sqlite" else None)
                except Exception as error:  # the read paths' figures still count
                    orders_error = f"{type(error).__name__}: {error}"[:500]
                    print(f"place-order failed: {orders_error}", flush=True)
                else:
                    for line in place_order.summary(orders):
                        print(line, flush=True)
        print(f"after the load: edge Envoy {memory(procs['edge-1'])}")
        if args.json:
            args.json.write_text(json.dumps({
                "address": plan.address, "duration": args.duration, "rounds": args.rounds,
                "connections": args.connections, "runs": [asdict(r) for r in runs],
                "medians": medians(runs), "rss_idle": idle, "rss_idle_anon": idle_anon,
                "rss_peak": peaks.peaks,
                "idle_cores": busy, "place_order": orders.as_dict() if orders else None,
                "place_order_error": orders_error,
                "load_average": [load_start, os.getloadavg()[0]],
            }, indent=1))
    finally:
        control.down(plan, timeout=120, out=sys.stderr)
        if args.run_dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
