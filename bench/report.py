"""`make bench`: what the mesh costs, measured side by side in one run, as a short report.

    .venv/bin/python -m bench.report [--duration 8] [--rounds 2] [--skip-edge] [--skip-events]

1. Mesh overhead (bench/mesh_overhead.py's mesh and ghz runs): catalog.GetProduct direct
   vs through two sidecars (mTLS), p50/p90/p99 at 1000 RPC/s and RPC/s at saturation,
   interleaved round by round; medians and ratios. On this box 1000 RPC/s is near one
   Python process's saturation, so the latencies are also compared at 40% of the mesh
   path's saturation, where they show the overhead rather than queueing.
2. Memory: RSS of each process of that mesh (Envoys, Consul, the Python services) at
   idle and right after the load.
3. One Python service process: catalog alone (no mesh), ghz at saturation with 32
   concurrent calls on one connection, with tracing off and on (the kit's OpenTelemetry
   instrumentation, nothing sampled), CPU per call from /proc, and where that CPU goes
   (cProfile of the process, grouped: grpc.aio's core, OpenTelemetry, the kit, structlog,
   the servicer, asyncio).
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
import pstats
import signal
import socket
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
        # 1000 RPC/s is close to (or above) what one Python catalog carries on this box,
        # and latency at saturation is queueing, not overhead: the same comparison at a
        # rate both paths carry with room to spare (40% of the mesh path's saturation).
        mesh_sat = statistics.median(r.rps for r in runs
                                     if (r.path, r.mode) == ("mesh", "saturation"))
        light = max(100, int(round(0.4 * mesh_sat, -1)))
        targets = {"direct": plan.instance("catalog-1").grpc_target,
                   "mesh": plan.instance("cart-1").upstream_target("catalog")}
        for _ in range(rounds):
            for path, target in targets.items():
                runs.append(mesh_overhead.summarize(path, f"{light} rps", mesh_overhead.ghz(
                    target, rps=light, concurrency=16, seconds=duration)))
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
    light_mode = next(r.mode for r in reversed(runs))
    for mode in ("1000 rps", light_mode):
        for attr, goal in (("p50_ms", GOAL_P50_MS), ("p90_ms", GOAL_P90_MS),
                           ("p99_ms", GOAL_P99_MS)):
            d, m = med("direct", mode, attr), med("mesh", mode, attr)
            rows.append([f"{attr[:3]} @ {mode.replace('rps', 'RPC/s')}", f"{d:.2f} ms",
                         f"{m:.2f} ms", f"{m / d:.2f}x (+{m - d:.2f} ms)",
                         f"+{goal} ms: {mark(m - d <= goal)}"])
    sd, sm = med("direct", "saturation", "rps"), med("mesh", "saturation", "rps")
    rows.append(["saturation (c=32)", f"{sd:,.0f} RPC/s", f"{sm:,.0f} RPC/s", f"{sm / sd:.2f}x",
                 f">= {GOAL_SATURATION}x: {mark(sm / sd >= GOAL_SATURATION)}"])
    report.table(["measure", "direct", "two sidecars", "mesh / direct", "goal"], rows)
    report.add()
    report.add(f"1000 RPC/s is {1000 / sd:.0%} of what the direct path carries at saturation "
               f"here and {1000 / sm:.0%} of the mesh path's: where that is near or above "
               f"100%, its latencies are queueing; {light_mode.replace('rps', 'RPC/s')} "
               "(40% of the mesh path's saturation) shows the overhead itself.")
    errors = [f"{r.path} {r.mode}: {r.errors}" for r in runs if r.errors != "0"]
    report.add()
    report.add(f"ghz runs: {len(runs)}; non-OK answers: {'; '.join(errors) or 'none'} (a timed "
               "ghz run ends by closing its connection: calls still in flight then come back "
               "Unavailable, up to its concurrency)")

    report.add()
    report.add("## 2. Memory (RSS, MB) of the overhead mesh")
    report.add()
    rows = [[name, f"{idle.get(name, 0):.1f}", f"{loaded.get(name, 0):.1f}"]
            for name in sorted(idle)]
    report.table(["process", "idle", "after the load"], rows)
    envoys = [v for k, v in idle.items() if k.endswith("-sidecar")]
    if envoys:
        report.add()
        report.add(f"largest idle sidecar Envoy: {max(envoys):.1f} MB (goal < "
                   f"{GOAL_ENVOY_IDLE_MB} MB: {mark(max(envoys) < GOAL_ENVOY_IDLE_MB)})")


# catalog under cProfile: SIGUSR2 starts profiling (after start-up and warm-up), SIGUSR1
# writes the profile and exits.
PROFILE_WRAPPER = """
import cProfile, os, pstats, runpy, signal, sys
profile = cProfile.Profile()
def dump(*_):
    profile.disable()
    pstats.Stats(profile).dump_stats(os.environ["BENCH_PROFILE_OUT"])
    os._exit(0)
signal.signal(signal.SIGUSR2, lambda *_: profile.enable())
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["catalog"]
runpy.run_module("services.catalog", run_name="__main__")
"""

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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python_process(report: Report, duration: int) -> None:
    """catalog alone on a free loopback address: RPC/s at saturation and CPU per call,
    tracing off and on, then a profile of where a call's CPU goes."""
    address = _free_address_for(7110)
    target = f"{address}:7110"
    results: dict[str, tuple[float, float]] = {}
    shares: list[tuple[str, float]] = []
    total_cpu = 0.0
    for label, extra, profiled in (
        ("tracing off", {}, False),
        ("tracing on (nothing sampled)",
         {"MESHMART_ZIPKIN_URL": f"http://{address}:9411/api/v2/spans",
          "MESHMART_TRACE_SAMPLE_RATIO": "0"}, False),
        ("profile", {"MESHMART_ZIPKIN_URL": f"http://{address}:9411/api/v2/spans",
                     "MESHMART_TRACE_SAMPLE_RATIO": "0"}, True),
    ):
        with tempfile.TemporaryDirectory(prefix="meshmart-py-bench-") as tmp:
            env = {"PATH": os.environ.get("PATH", ""), "MESHMART_HOST": address,
                   "MESHMART_PORT": "7110", "MESHMART_DATA_DIR": tmp, "MESHMART_RUN_DIR": tmp,
                   "MESHMART_LOG_LEVEL": "INFO", "MESHMART_METRICS_PORT": "0",
                   "BENCH_PROFILE_OUT": f"{tmp}/profile", **extra}
            command = ([sys.executable, "-c", PROFILE_WRAPPER] if profiled
                       else [sys.executable, "-m", "services.catalog"])
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 30
                while True:  # until it answers (a few seconds of imports)
                    try:
                        mesh_overhead.ghz(target, rps=0, concurrency=1, seconds=1)
                        break
                    except subprocess.CalledProcessError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise
                        time.sleep(0.2)
                mesh_overhead.ghz(target, rps=0, concurrency=32, seconds=1)  # warm up
                if profiled:
                    proc.send_signal(signal.SIGUSR2)
                before = cpu_seconds(proc.pid)
                result = mesh_overhead.ghz(target, rps=0, concurrency=32, seconds=duration)
                used = cpu_seconds(proc.pid) - before
                if proc.poll() is not None:
                    raise RuntimeError(f"catalog on {target} exited during the run")
                codes: dict[str, int] = result.get("statusCodeDistribution") or {}  # type: ignore[assignment]
                # Calls still in flight when the timed run ends come back Canceled.
                calls = int(result["count"]) - codes.get("Canceled", 0)  # type: ignore[call-overload]
                if profiled:
                    proc.send_signal(signal.SIGUSR1)
                    proc.wait(timeout=30)
                    shares, total_cpu = _profile_shares(Path(tmp) / "profile")
                else:
                    results[label] = (float(result["rps"]), used / calls * 1000)  # type: ignore[arg-type]
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    report.add()
    report.add("## 3. One Python service process (catalog alone, GetProduct, ghz c=32)")
    report.add()
    rows = [[label, f"{rps:,.0f}", f"{ms:.3f} ms", f"{1000 / ms:,.0f}"]
            for label, (rps, ms) in results.items()]
    report.table(["kit tracing", "RPC/s (ghz on the same 2 cores)", "CPU per call",
                  "RPC/s per core (1 / CPU per call)"], rows)
    best = max(1000 / ms for _, ms in results.values())
    report.add()
    report.add(f"goal >= {GOAL_PYTHON_RPS:,} RPC/s on one core: {mark(best >= GOAL_PYTHON_RPS)} "
               f"(best {best:,.0f}; CPU time on a busy box is inflated too)")
    report.add()
    report.add(f"where the CPU of the calls goes (cProfile over {duration}s of load, tracing on, "
               f"{total_cpu:.1f}s profiled; profiling slows everything, read the shares):")
    report.add()
    report.table(["part", "share"], [[name, f"{share:.0%}"] for name, share in shares])


def _free_address_for(port: int) -> str:
    """A loopback address where ``port`` is free (no other mesh's catalog answers there)."""
    for last in range(200, 250):
        address = f"127.0.0.{last}"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return address
    raise RuntimeError(f"no loopback address with port {port} free")


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
    python_process(report, max(3, args.duration // 2))
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
