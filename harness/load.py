"""Steady open-loop load for the chaos tests, `make demo` and operators.

    .venv/bin/python -m harness.load --target 127.0.0.1:30301 \
        --method meshmart.catalog.v1.CatalogService/ListProducts --data '{"page_size": 1}' \
        --rate 200 --duration 10

Open loop: call number i starts at ``t0 + i / rate`` whether or not earlier calls have
answered, the way independent users arrive. A closed loop (N workers, each waiting for
its answer) would slow down exactly when the system does and hide the failure it is
meant to show. The run is bounded three ways: by ``duration``, by ``max_requests``, and
by ``max_in_flight`` (a call due while that many are unanswered is not sent and is
counted as ``NOT_SENT``); calls still running ``drain_timeout`` seconds after the last
one was sent are cancelled and counted as ``DRIVER_CANCELLED``. Targets must be loopback
addresses (``loopback_channel``).

The report gives sent / ok / failed by status code and latency percentiles, overall and
per code (the chaos tests need, e.g., the p99 of the calls a circuit breaker rejected),
plus how far the driver itself fell behind its schedule: on a loaded machine that is
the first number to read before trusting the others.

ghz remains the tool for benchmarks (harness/ghz.py); this driver exists because
the chaos scenarios need per-call outcomes, changing requests (a new idempotency key per
Charge) and faults injected in the middle of a run, from the same event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import ipaddress
import math
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import grpc

from harness import ROOT

OK = "OK"
NOT_SENT = "NOT_SENT"  # due while max_in_flight calls were unanswered
DRIVER_CANCELLED = "DRIVER_CANCELLED"  # still running drain_timeout after the last send

# One call of the load: gets its sequence number, returns an optional tag (counted in
# LoadReport.tags, e.g. "degraded:payment"), raises grpc.aio.AioRpcError (or CallFailed)
# on failure.
Call = Callable[[int], Awaitable[str | None]]


class CallFailed(Exception):
    """A failed call that is not a gRPC error, e.g. an HTTP status from the edge's REST
    face: recorded under ``code`` (say "HTTP 429") like a gRPC status code."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values): p99 of 100 values is the 99th."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LoadReport:
    rate: float  # requested calls per second
    duration: float  # requested seconds
    sent: int = 0  # calls actually started (NOT_SENT ones are only counted in codes)
    codes: Counter[str] = field(default_factory=Counter)  # OK or a grpc.StatusCode name
    latencies: dict[str, list[float]] = field(default_factory=dict)  # code -> seconds
    tags: Counter[str] = field(default_factory=Counter)
    details: dict[str, str] = field(default_factory=dict)  # code -> first error message
    max_schedule_lag: float = 0.0  # how late the driver started its latest call (s)
    late_starts: int = 0  # calls started more than 10 ms after their slot
    elapsed: float = 0.0  # first send to last answer (s)
    # (seconds since start, code) of every failed call, to place failures in time.
    failures_at: list[tuple[float, str]] = field(default_factory=list)
    # (seconds since start when it ended, latency or None, code) of every call.
    calls: list[tuple[float, float | None, str]] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.codes[OK]

    @property
    def failed(self) -> int:
        return sum(n for code, n in self.codes.items() if code != OK)

    @property
    def failed_by_code(self) -> dict[str, int]:
        return {code: n for code, n in sorted(self.codes.items()) if code != OK}

    def all_latencies(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]

    def latency_ms(self, pct: float, code: str | None = None) -> float:
        """Percentile in ms of every answered call, or of the calls that ended in ``code``."""
        values = self.all_latencies() if code is None else self.latencies.get(code, [])
        return percentile(values, pct) * 1000

    def achieved_rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0

    def record(self, code: str, latency: float | None, at: float, detail: str = "") -> None:
        self.codes[code] += 1
        self.calls.append((at, latency, code))
        if latency is not None:
            self.latencies.setdefault(code, []).append(latency)
        if code != OK:
            self.failures_at.append((at, code))
            if code not in self.details:
                self.details[code] = detail or "(no message)"

    def timeline(self, step: float = 1.0) -> list[tuple[float, int, int, float]]:
        """Per ``step`` seconds (by when calls ended): (start of the slot, answered ok,
        failed, p99 latency in ms) -- where in the run failures and slow calls were."""
        slots: dict[int, list[tuple[float | None, str]]] = {}
        for at, latency, code in self.calls:
            slots.setdefault(int(at // step), []).append((latency, code))
        out = []
        for slot in sorted(slots):
            calls = slots[slot]
            latencies = [x for x, _ in calls if x is not None]
            ok = sum(code == OK for _, code in calls)
            out.append((slot * step, ok, len(calls) - ok, percentile(latencies, 99) * 1000))
        return out

    def summary(self) -> str:
        """Two lines: counts, then latency percentiles (and the driver's own lag)."""
        failed = ", ".join(f"{c} {n}" for c, n in self.failed_by_code.items()) or "none"
        tags = ", ".join(f"{t} {n}" for t, n in sorted(self.tags.items()))
        line1 = (
            f"sent {self.sent} in {self.elapsed:.1f}s ({self.achieved_rate():.0f}/s of "
            f"{self.rate:.0f}/s asked), ok {self.ok}, failed {self.failed} ({failed})"
            + (f"; {tags}" if tags else "")
        )
        line2 = (
            f"latency p50 {self.latency_ms(50):.1f} ms, p90 {self.latency_ms(90):.1f} ms, "
            f"p99 {self.latency_ms(99):.1f} ms, max {self.latency_ms(100):.1f} ms; "
            f"driver lag max {self.max_schedule_lag * 1000:.0f} ms "
            f"({self.late_starts} calls started >10 ms late)"
        )
        return f"{line1}\n{line2}"


_frozen_runs = 0


@contextlib.contextmanager
def _gc_frozen() -> Iterator[None]:
    """One full collection before the run, then every object the process already has is
    left out of the collector's scans (gc.freeze) until the last concurrent run ends: a
    long-lived process (a pytest session) otherwise pauses for tens of ms in a full
    collection, and that pause would show up as the system's latency."""
    global _frozen_runs
    if _frozen_runs == 0:
        gc.collect()
        gc.freeze()
    _frozen_runs += 1
    try:
        yield
    finally:
        _frozen_runs -= 1
        if _frozen_runs == 0:
            gc.unfreeze()


async def open_loop(
    call: Call,
    *,
    rate: float,
    duration: float,
    max_requests: int | None = None,
    max_in_flight: int = 1000,
    drain_timeout: float = 10.0,
    stop: asyncio.Event | None = None,
) -> LoadReport:
    """Send ``call(i)`` at ``rate`` per second for ``duration`` seconds (or until
    ``max_requests`` were due, or ``stop`` is set), then wait for the answers."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    with _gc_frozen():
        return await _open_loop(call, rate, duration, max_requests, max_in_flight,
                                drain_timeout, stop)


async def _open_loop(
    call: Call,
    rate: float,
    duration: float,
    max_requests: int | None,
    max_in_flight: int,
    drain_timeout: float,
    stop: asyncio.Event | None,
) -> LoadReport:
    report = LoadReport(rate=rate, duration=duration)
    total = int(rate * duration)
    if max_requests is not None:
        total = min(total, max_requests)
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()
    started = loop.time()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            tag = await call(i)
        except grpc.aio.AioRpcError as error:
            report.record(error.code().name, time.perf_counter() - t0, loop.time() - started,
                          error.details() or "")
            return
        except CallFailed as failure:
            report.record(failure.code, time.perf_counter() - t0, loop.time() - started,
                          failure.detail)
            return
        except asyncio.CancelledError:
            report.record(DRIVER_CANCELLED, None, loop.time() - started)
            raise
        report.record(OK, time.perf_counter() - t0, loop.time() - started)
        if tag:
            report.tags[tag] += 1

    for i in range(total):
        if stop is not None and stop.is_set():
            break
        due = started + i / rate
        delay = due - loop.time()
        if delay > 0:
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    break
        lag = loop.time() - due
        report.max_schedule_lag = max(report.max_schedule_lag, lag)
        report.late_starts += lag > 0.010
        if len(in_flight) >= max_in_flight:
            report.record(NOT_SENT, None, loop.time() - started)
            continue
        report.sent += 1
        task = asyncio.create_task(one(i))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        _, pending = await asyncio.wait(set(in_flight), timeout=drain_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    report.elapsed = loop.time() - started
    return report


async def capacity(call: Call, *, seconds: float = 2.0, concurrency: int = 16) -> float:
    """Calls per second answered OK by ``concurrency`` callers each sending its next call
    as soon as the last is answered, for ``seconds``: what the path carries right now on
    this machine. The chaos scenarios size their open-loop load from it, so that "under
    steady load" means the same share of the machine on a quiet box and on a busy one."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    answered = 0

    async def caller(first: int) -> None:
        nonlocal answered
        i = first
        while loop.time() < end:
            with contextlib.suppress(grpc.aio.AioRpcError, CallFailed):
                await call(i)
                answered += 1
            i += concurrency

    started = loop.time()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    return answered / (loop.time() - started)


# --------------------------------------------------------------------------- targets


def require_loopback(target: str) -> None:
    """Load goes to loopback addresses only (127.0.0.0/8, ::1): raise ValueError otherwise."""
    host = target.rsplit(":", 1)[0].strip("[]")
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as error:
        raise ValueError(f"cannot resolve {host!r}: {error}") from None
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise ValueError(f"{target} is not a loopback address: load stays on this machine")


def loopback_channel(target: str) -> grpc.aio.Channel:
    """A plaintext channel to a loopback target: a service's own port or a sidecar's
    local upstream listener (the sidecar does the mTLS)."""
    require_loopback(target)
    return grpc.aio.insecure_channel(target)


# --------------------------------------------------------------------------- command line


def _import_generated() -> None:
    """Import every generated meshmart module, filling protobuf's default pool."""
    gen = ROOT / "gen" / "python"
    for path in sorted((gen / "meshmart").glob("*/v1/*_pb2.py")):
        importlib.import_module(".".join(path.relative_to(gen).with_suffix("").parts))


def unary_call(channel: grpc.aio.Channel, method: str, data: str, timeout: float) -> Call:
    """A Call sending the JSON ``data`` to ``method`` ("pkg.Service/Method")."""
    from google.protobuf import descriptor_pool, json_format, message_factory

    _import_generated()
    service, _, name = method.strip("/").partition("/")
    descriptor = descriptor_pool.Default().FindServiceByName(service).FindMethodByName(name)
    request_class = message_factory.GetMessageClass(descriptor.input_type)
    response_class = message_factory.GetMessageClass(descriptor.output_type)
    request = json_format.Parse(data, request_class())
    stub = channel.unary_unary(
        f"/{service}/{name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )

    async def call(_: int) -> None:
        await stub(request, timeout=timeout)

    return call


async def _main(args: argparse.Namespace) -> int:
    async with loopback_channel(args.target) as channel:
        call = unary_call(channel, args.method, args.data, args.timeout)
        report = await open_loop(
            call, rate=args.rate, duration=args.duration, max_requests=args.max_requests
        )
    sys.stdout.write(report.summary() + "\n")
    for code, detail in report.details.items():
        sys.stdout.write(f"  {code}: {detail}\n")
    return 0 if report.failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="loopback host:port")
    parser.add_argument("--method", required=True,
                        help="e.g. meshmart.catalog.v1.CatalogService/GetProduct")
    parser.add_argument("--data", default="{}", help="the request as JSON")
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline of each call (s)")
    args = parser.parse_args(argv)
    try:
        require_loopback(args.target)
    except ValueError as error:
        parser.error(str(error))
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
