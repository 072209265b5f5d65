"""What tracing costs: catalog.GetProduct throughput with tracing at 100 % (and 10 %) vs off.

    .venv/bin/python bench/tracing_overhead.py [--seconds 10] [--rounds 2]

Starts Zipkin (the jar tools/fetch-zipkin.sh fetched) and one catalog process on a free
loopback address, then, alternating, saturates GetProduct with ghz (32 concurrent calls
on one connection) against catalog with tracing off (no MESHMART_ZIPKIN_URL), with
every call traced and exported to Zipkin (MESHMART_TRACE_SAMPLE_RATIO=1.0) and with one
new trace in ten recorded (0.1), each round a fresh process. Prints each run and the
ratios of the medians. Every process it starts
is stopped by pid, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.mesh_overhead import CALL, PAYLOAD
from harness.ghz import ghz, status_codes
from harness.host import free_loopback
from tools.mesh.observability import ZIPKIN_PORT, zipkin_jar, zipkin_listen_args
from tools.mesh.topology import ROOT

PORT = 7110




def wait_http(url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_grpc(address: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            result = subprocess.run(
                [str(ROOT / ".venv" / "bin" / "grpcurl"), "-plaintext", "-connect-timeout",
                 "2", f"{address}:{PORT}", "grpc.health.v1.Health/Check"],
                capture_output=True, check=False, timeout=15)
        except subprocess.TimeoutExpired:
            result = None
        if result is not None and result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("catalog did not answer its health check in time")
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def saturate(address: str, seconds: int) -> float:
    report = ghz(f"{address}:{PORT}", CALL, PAYLOAD, concurrency=32, total=2500 * seconds,
                 timeout=seconds * 20 + 60)
    codes = status_codes(report)
    errors = sum(n for code, n in codes.items() if code != "OK")
    if errors:
        raise RuntimeError(f"{errors} failed calls: {codes}")
    return float(report["rps"])


def run_catalog(
    address: str, data: Path, zipkin: str | None, ratio: float
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MESHMART_HOST": address, "MESHMART_PORT": str(PORT),
           "MESHMART_DATA_DIR": str(data), "MESHMART_LOG_LEVEL": "WARNING"}
    env.pop("MESHMART_ZIPKIN_URL", None)
    if zipkin:
        env["MESHMART_ZIPKIN_URL"] = zipkin
        env["MESHMART_TRACE_SAMPLE_RATIO"] = str(ratio)
    return subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "services.catalog"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not zipkin_jar().exists():
        sys.stderr.write(f"{zipkin_jar()} missing: run `make setup` (needs java and mvn)\n")
        return 1
    address = free_loopback(PORT, ZIPKIN_PORT, first=60)
    zipkin_url = f"http://{address}:{ZIPKIN_PORT}"
    with tempfile.TemporaryDirectory(prefix="tracing-bench-") as tmp:
        zipkin = subprocess.Popen(
            ["java", "-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar",
             str(zipkin_jar()), *zipkin_listen_args(address)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        modes = {"off": 0.0, "on (100 %)": 1.0, "on (10 %)": 0.1}
        results: dict[str, list[float]] = {mode: [] for mode in modes}
        try:
            wait_http(f"{zipkin_url}/health", within=120)
            for round_ in range(args.rounds):
                for label, ratio in modes.items():
                    url = f"{zipkin_url}/api/v2/spans" if ratio else None
                    catalog = run_catalog(address, Path(tmp), url, ratio)
                    try:
                        wait_grpc(address, within=60)
                        saturate(address, 2)  # warm-up
                        rps = saturate(address, args.seconds)
                    finally:
                        stop(catalog)
                    results[label].append(rps)
                    print(f"round {round_ + 1}  tracing {label:<11} {rps:8.0f} RPC/s", flush=True)
            with urllib.request.urlopen(f"{zipkin_url}/api/v2/services", timeout=5) as r:
                print(f"Zipkin received spans of: {json.loads(r.read())}")
        finally:
            stop(zipkin)
    off = statistics.median(results["off"])
    print(f"\nGetProduct at saturation (c=32), medians: off {off:.0f} RPC/s")
    for label in ("on (100 %)", "on (10 %)"):
        on = statistics.median(results[label])
        print(f"  tracing {label}: {on:.0f} RPC/s, ratio {on / off:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
