"""CPU per call of one catalog process alone (no mesh), and A/B runs of kit changes.

    .venv/bin/python -m bench.catalog_cpu --variant now=. --variant before=/tmp/before \
        [--variant uvloop=.+uvloop] [--rounds 3] [--duration 4] [--uvloop-path DIR]

A variant is NAME=TREE, optionally +uvloop and/or +bare: the source tree catalog runs
from (the work tree, or a `git worktree add` of another commit for a before/after),
whether uvloop is the event loop, and with +bare, instead of catalog, a bare grpc.aio
server of the same CatalogService/GetProduct answering the same message (built once at
start from catalog's own seed, as catalog does): the limit the kit is measured against
(issue 22: the kit within 1.25x of it), e.g. `--variant kit=. --variant bare=.+bare`.
The variants run alternately, round by round, each round in a fresh
catalog process on a free loopback address: start, wait until it answers, warm up, then
ghz at saturation (32 concurrent calls on one connection) for --duration seconds, with the
kit's tracing on (OpenTelemetry instrumentation, nothing sampled) unless --tracing off.
CPU per call = the process's user + system CPU time (/proc) over the calls answered.

bench/report.py's section 3 measures the work tree the same way; bench/TUNING.md records
the A/B runs. uvloop is not a project dependency: --uvloop-path names a directory that
has it (`pip install --target DIR uvloop`), put on the catalog's PYTHONPATH.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.mesh_overhead import CALL, PAYLOAD
from harness.ghz import ghz, status_codes
from harness.host import cpu_seconds, free_loopback
from tools.mesh.topology import ROOT

PORT = 7110
SATURATION = 32  # calls in flight on the one connection
BARE_SERVER = Path(__file__).resolve().with_name("bare_catalog.py")

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


@dataclass(frozen=True)
class Sample:
    rps: float  # ghz's RPC/s at saturation (ghz on the same cores)
    cpu_ms: float  # catalog's CPU per answered call
    calls: int






def tracing_env(address: str) -> dict[str, str]:
    """The kit's tracing on, nothing sampled (no Zipkin needs to listen)."""
    return {"MESHMART_ZIPKIN_URL": f"http://{address}:9411/api/v2/spans",
            "MESHMART_TRACE_SAMPLE_RATIO": "0"}


@contextlib.contextmanager
def catalog(variant: Variant, *, tracing: bool = True, uvloop_path: Path | None = None,
            profile_out: Path | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
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
               **(tracing_env(address) if tracing else {}),
               **({"BENCH_UVLOOP": "1"} if variant.uvloop else {}),
               **({"BENCH_BARE": str(BARE_SERVER)} if variant.bare else {}),
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


def saturate(proc: subprocess.Popen[bytes], target: str, seconds: int) -> Sample:
    """ghz at saturation (c=32, one connection) for ``seconds``; the process's CPU per call."""
    before = cpu_seconds(proc.pid)
    result = ghz(target, CALL, PAYLOAD, concurrency=SATURATION, seconds=seconds)
    used = cpu_seconds(proc.pid) - before
    if proc.poll() is not None:
        raise RuntimeError(f"catalog on {target} exited during the run")
    # Calls still in flight when the timed run ends come back Canceled (on a busy box some
    # Unavailable, one per slot at most): the CPU per call counts the OK ones; more
    # failures than that would make it meaningless.
    codes = status_codes(result)
    failed = sum(n for code, n in codes.items() if code not in ("OK", "Canceled"))
    if failed > SATURATION:
        raise RuntimeError(f"catalog on {target} failed calls during the run: {codes}")
    calls = codes.get("OK", 0)
    return Sample(float(result["rps"]), used / calls * 1000, calls)


def measure(variant: Variant, seconds: int, *, tracing: bool = True,
            uvloop_path: Path | None = None) -> Sample:
    with catalog(variant, tracing=tracing, uvloop_path=uvloop_path) as (proc, target):
        return saturate(proc, target, seconds)


def profile(variant: Variant, seconds: int, out: Path, *, tracing: bool = True) -> None:
    """cProfile of ``seconds`` of saturation (after start-up and warm-up) into ``out``."""
    with catalog(variant, tracing=tracing, profile_out=out) as (proc, target):
        proc.send_signal(signal.SIGUSR2)
        ghz(target, CALL, PAYLOAD, concurrency=32, seconds=seconds)
        proc.send_signal(signal.SIGUSR1)
        proc.wait(timeout=30)


def ab(variants: list[Variant], rounds: int, seconds: int, *, tracing: bool = True,
       uvloop_path: Path | None = None) -> dict[str, list[Sample]]:
    """Every variant once per round, in turn (the order rotates each round)."""
    samples: dict[str, list[Sample]] = {v.name: [] for v in variants}
    for r in range(rounds):
        for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
            sample = measure(variant, seconds, tracing=tracing, uvloop_path=uvloop_path)
            samples[variant.name].append(sample)
            print(f"round {r + 1} {variant.name:<12} {sample.rps:>7,.0f} RPC/s  CPU per call "
                  f"{sample.cpu_ms:.3f} ms  (load {os.getloadavg()[0]:.1f})", flush=True)
    return samples


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
    parser.add_argument("--uvloop-path", type=Path, default=None,
                        help="a directory with uvloop in it (pip install --target DIR uvloop)")
    args = parser.parse_args(argv)
    if any(v.uvloop for v in args.variant) and args.uvloop_path is None:
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: F401  (installed in the venv: nothing to add)
        if "uvloop" not in sys.modules:
            parser.error("a +uvloop variant needs --uvloop-path (uvloop is not in the venv)")
    print(f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores; tracing "
          f"{args.tracing}; {args.rounds} rounds of {args.duration}s per variant", flush=True)
    samples = ab(args.variant, args.rounds, args.duration, tracing=args.tracing == "on",
                 uvloop_path=args.uvloop_path)
    first = args.variant[0].name
    base = statistics.median(s.cpu_ms for s in samples[first])
    print(f"\nvariant       CPU per call (median)  RPC/s (median)  vs {first}")
    for name, runs in samples.items():
        cpu = statistics.median(s.cpu_ms for s in runs)
        rps = statistics.median(s.rps for s in runs)
        print(f"{name:<12} {cpu:>12.3f} ms {rps:>17,.0f} {cpu / base - 1:>+10.1%}")
    print(f"(load average at the end {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
