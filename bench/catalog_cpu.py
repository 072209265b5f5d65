"""CPU per call of one catalog process alone (no mesh), and A/B runs of kit changes.

    .venv/bin/python -m bench.catalog_cpu --variant now=. --variant before=/tmp/before \
        [--variant uvloop=.+uvloop] [--variant bare=.+bare] [--rounds 3] [--duration 4] \
        [--rate 600] [--sample-ratio 0.1] [--uvloop-path DIR]

A variant is NAME=TREE, optionally +uvloop and/or +bare: the source tree catalog runs
from (the work tree, or a `git worktree add` of another commit for a before/after),
whether uvloop is the event loop, and with +bare, instead of catalog, a bare grpc.aio
server of the same CatalogService/GetProduct answering the same message (built once at
start from catalog's own seed, as catalog does): the limit the kit is measured against
(issue 22: the kit within 1.25x of it), e.g. `--variant kit=. --variant bare=.+bare`.
The variants run alternately, round by round, each round in a fresh
catalog process on a free loopback address: start, wait until it answers, warm up, then
ghz at saturation (32 concurrent calls on one connection) for --duration seconds, then,
with --rate N, ghz at N RPC/s (16 in flight at most) for as long, in the same process.
The kit runs with the production defaults: tracing on at the mesh's default sampling
(--sample-ratio, default tools/mesh/observability.py's 0.1: a tenth of the calls, which
all start a trace here, are recorded and exported to a Zipkin stand-in of this process
that accepts and counts the spans), the RED metrics, the access log at INFO (to
/dev/null). --tracing off runs it without tracing. CPU per call = the process's user +
system CPU time (/proc) over the calls answered. With a +bare variant, the summary gives
each variant's CPU per call over the bare one's (issue 22 goal 1: at most 1.25x at
saturation, 1.3x at 600 RPC/s).

bench/report.py's section 3 measures the work tree the same way; bench/TUNING.md records
the A/B runs. uvloop is not a project dependency: --uvloop-path names a directory that
has it (`pip install --target DIR uvloop`), put on the catalog's PYTHONPATH.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.mesh_overhead import CALL, PAYLOAD
from harness.ghz import ghz, status_codes
from harness.host import cpu_seconds, free_loopback
from tools.mesh.observability import DEFAULT_TRACE_SAMPLE_RATIO
from tools.mesh.topology import ROOT

PORT = 7110
SATURATION = 32  # calls in flight on the one connection
AT_RATE_CONCURRENCY = 16  # at most in flight at a fixed rate (--rate)
# The bare server of a +bare variant, from the variant's own tree.
BARE_SERVER = Path("bench") / "bare_catalog.py"

# catalog's entry point, optionally on uvloop, optionally under cProfile: SIGUSR2 starts
# profiling (after start-up and warm-up), SIGUSR1 writes the profile and exits.
WRAPPER = """
import os, runpy, signal, sys
if os.environ.get("BENCH_UVLOOP"):
    import uvloop
    uvloop.install()
if os.environ.get("BENCH_BARE"):
    sys.argv = ["bare"]
    runpy.run_path(os.environ["BENCH_BARE"], run_name="__main__")
    sys.exit(0)
if os.environ.get("BENCH_PROFILE_OUT"):
    import cProfile, pstats
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


@dataclass(frozen=True)
class Variant:
    name: str
    tree: Path = ROOT
    uvloop: bool = False
    bare: bool = False  # bench/bare_catalog.py instead of the kit's catalog

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """NAME=TREE, then any of +uvloop, +bare."""
        name, sep, rest = spec.partition("=")
        if not sep or not name:
            raise ValueError(f"--variant {spec!r}: expected NAME=TREE[+uvloop][+bare]")
        tree, *flags = rest.split("+")
        if not set(flags) <= {"uvloop", "bare"}:
            raise ValueError(f"--variant {spec!r}: the options are +uvloop and +bare")
        path = Path(tree or ".").resolve()
        if not (path / "services" / "catalog").is_dir():
            raise ValueError(f"--variant {spec!r}: {path} has no services/catalog")
        return cls(name, path, "uvloop" in flags, "bare" in flags)


SATURATED = "saturation"


@dataclass(frozen=True)
class Sample:
    rps: float  # ghz's RPC/s (ghz on the same cores)
    cpu_ms: float  # catalog's CPU per answered call
    calls: int
    mode: str = SATURATED  # or "600 RPC/s"


class ZipkinSink:
    """Stands in for Zipkin: accepts the spans a catalog exports (POST /api/v2/spans,
    202) and counts them, so an exporting process pays what it pays against a real one
    (encoding, HTTP), while the receiving side's CPU is not the catalog's."""

    def __init__(self) -> None:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with contextlib.suppress(ValueError):
                    sink.spans += len(json.loads(body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.spans = 0
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/v2/spans"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_sink: list[ZipkinSink] = []


def zipkin_sink() -> ZipkinSink:
    """This process's Zipkin stand-in (started on first use, a daemon thread)."""
    if not _sink:
        _sink.append(ZipkinSink())
    return _sink[0]


def tracing_env(sample_ratio: float) -> dict[str, str]:
    """The kit's tracing on at ``sample_ratio``, exporting to this process's sink."""
    return {"MESHMART_ZIPKIN_URL": zipkin_sink().url,
            "MESHMART_TRACE_SAMPLE_RATIO": str(sample_ratio)}


@contextlib.contextmanager
def catalog(variant: Variant, *, tracing: bool = True, uvloop_path: Path | None = None,
            profile_out: Path | None = None,
            sample_ratio: float = DEFAULT_TRACE_SAMPLE_RATIO,
            ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A catalog process from ``variant``'s tree on a free loopback address, answering
    and warmed up; stopped (by pid) on exit. Yields (process, ghz target)."""
    address = free_loopback(PORT, first=200)
    target = f"{address}:{PORT}"
    pythonpath = [str(variant.tree), str(variant.tree / "gen" / "python")]
    if variant.uvloop and uvloop_path is not None:
        pythonpath.append(str(uvloop_path))
    with tempfile.TemporaryDirectory(prefix="meshmart-catalog-cpu-") as tmp:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(pythonpath),
               "MESHMART_HOST": address, "MESHMART_PORT": str(PORT),
               "MESHMART_DATA_DIR": tmp, "MESHMART_RUN_DIR": tmp,
               "MESHMART_LOG_LEVEL": "INFO", "MESHMART_METRICS_PORT": "0",
               **(tracing_env(sample_ratio) if tracing else {}),
               **({"BENCH_UVLOOP": "1"} if variant.uvloop else {}),
               **({"BENCH_BARE": str(variant.tree / BARE_SERVER)} if variant.bare else {}),
               **({"BENCH_PROFILE_OUT": str(profile_out)} if profile_out else {})}
        proc = subprocess.Popen([sys.executable, "-c", WRAPPER], cwd=variant.tree, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:  # until it answers OK (a few seconds of imports, more on a busy box)
                try:
                    probe = ghz(target, CALL, PAYLOAD, concurrency=1, seconds=1)
                    if status_codes(probe).get("OK", 0) > 0:
                        break
                    raise subprocess.CalledProcessError(1, "ghz")  # refused: not listening yet
                except subprocess.CalledProcessError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"catalog ({variant.name}) did not answer on "
                                           f"{target}") from None
                    time.sleep(0.2)
            ghz(target, CALL, PAYLOAD, concurrency=32, seconds=1)  # warm up
            yield proc, target
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def saturate(proc: subprocess.Popen[bytes], target: str, seconds: int, rate: int = 0) -> Sample:
    """ghz at saturation (c=32, one connection) for ``seconds``, or at ``rate`` RPC/s (16
    in flight at most); the process's CPU per call."""
    concurrency = AT_RATE_CONCURRENCY if rate else SATURATION
    before = cpu_seconds(proc.pid)
    result = ghz(target, CALL, PAYLOAD, concurrency=concurrency, seconds=seconds, rps=rate)
    used = cpu_seconds(proc.pid) - before
    if proc.poll() is not None:
        raise RuntimeError(f"catalog on {target} exited during the run")
    # Calls still in flight when the timed run ends come back Canceled (on a busy box some
    # Unavailable, one per slot at most): the CPU per call counts the OK ones; more
    # failures than that would make it meaningless.
    codes = status_codes(result)
    failed = sum(n for code, n in codes.items() if code not in ("OK", "Canceled"))
    if failed > concurrency:
        raise RuntimeError(f"catalog on {target} failed calls during the run: {codes}")
    calls = codes.get("OK", 0)
    return Sample(float(result["rps"]), used / calls * 1000, calls,
                  f"{rate} RPC/s" if rate else SATURATED)


def measure(variant: Variant, seconds: int, *, tracing: bool = True,
            uvloop_path: Path | None = None, rates: tuple[int, ...] = (),
            sample_ratio: float = DEFAULT_TRACE_SAMPLE_RATIO) -> list[Sample]:
    """One process of ``variant``: saturation, then each of ``rates``."""
    with catalog(variant, tracing=tracing, uvloop_path=uvloop_path,
                 sample_ratio=sample_ratio) as (proc, target):
        return [saturate(proc, target, seconds, rate) for rate in (0, *rates)]


def profile(variant: Variant, seconds: int, out: Path, *, tracing: bool = True,
            sample_ratio: float = DEFAULT_TRACE_SAMPLE_RATIO) -> None:
    """cProfile of ``seconds`` of saturation (after start-up and warm-up) into ``out``."""
    with catalog(variant, tracing=tracing, profile_out=out,
                 sample_ratio=sample_ratio) as (proc, target):
        proc.send_signal(signal.SIGUSR2)
        ghz(target, CALL, PAYLOAD, concurrency=32, seconds=seconds)
        proc.send_signal(signal.SIGUSR1)
        proc.wait(timeout=30)


def ab(variants: list[Variant], rounds: int, seconds: int, *, tracing: bool = True,
       uvloop_path: Path | None = None, rates: tuple[int, ...] = (),
       sample_ratio: float = DEFAULT_TRACE_SAMPLE_RATIO) -> dict[str, list[Sample]]:
    """Every variant once per round, in turn (the order rotates each round)."""
    samples: dict[str, list[Sample]] = {v.name: [] for v in variants}
    for r in range(rounds):
        for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
            for sample in measure(variant, seconds, tracing=tracing, uvloop_path=uvloop_path,
                                  rates=rates, sample_ratio=sample_ratio):
                samples[variant.name].append(sample)
                print(f"round {r + 1} {variant.name:<12} {sample.mode:<12} "
                      f"{sample.rps:>7,.0f} RPC/s  CPU per call {sample.cpu_ms:.3f} ms  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return samples


def median_cpu(runs: list[Sample], mode: str) -> float:
    return statistics.median(s.cpu_ms for s in runs if s.mode == mode)


def _variant(spec: str) -> Variant:
    try:
        return Variant.parse(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.catalog_cpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, type=_variant,
                        help="NAME=TREE[+uvloop] (repeat)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds of load per run")
    parser.add_argument("--tracing", choices=("on", "off"), default="on")
    parser.add_argument("--sample-ratio", type=float, default=DEFAULT_TRACE_SAMPLE_RATIO,
                        help="MESHMART_TRACE_SAMPLE_RATIO of the kit's variants "
                             "(default: the mesh's)")
    parser.add_argument("--rate", type=int, action="append", default=[],
                        help="also measure at this many RPC/s, after saturation (repeat)")
    parser.add_argument("--uvloop-path", type=Path, default=None,
                        help="a directory with uvloop in it (pip install --target DIR uvloop)")
    args = parser.parse_args(argv)
    if any(v.uvloop for v in args.variant) and args.uvloop_path is None:
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: F401  (installed in the venv: nothing to add)
        if "uvloop" not in sys.modules:
            parser.error("a +uvloop variant needs --uvloop-path (uvloop is not in the venv)")
    tracing = (f"tracing on, sample ratio {args.sample_ratio:g}" if args.tracing == "on"
               else "tracing off")
    print(f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores; {tracing}; "
          f"{args.rounds} rounds of {args.duration}s per variant", flush=True)
    samples = ab(args.variant, args.rounds, args.duration, tracing=args.tracing == "on",
                 uvloop_path=args.uvloop_path, rates=tuple(args.rate),
                 sample_ratio=args.sample_ratio)
    first = args.variant[0].name
    bare = next((v.name for v in args.variant if v.bare), None)
    modes = [SATURATED, *(f"{rate} RPC/s" for rate in args.rate)]
    for mode in modes:
        base = median_cpu(samples[first], mode)
        print(f"\n{mode}: variant   CPU per call (median)  per round  RPC/s (median)  "
              f"vs {first}{f'  / {bare}' if bare else ''}")
        for name, runs in samples.items():
            cpu = median_cpu(runs, mode)
            rounds = ", ".join(f"{s.cpu_ms:.3f}" for s in runs if s.mode == mode)
            rps = statistics.median(s.rps for s in runs if s.mode == mode)
            ratio = f"  {cpu / median_cpu(samples[bare], mode):.2f}x" if bare else ""
            print(f"{name:<12} {cpu:>10.3f} ms  ({rounds})  {rps:>9,.0f}  "
                  f"{cpu / base - 1:>+7.1%}{ratio}")
    if _sink:
        print(f"\nspans exported to the Zipkin stand-in: {_sink[0].spans:,}")
    print(f"(load average at the end {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
