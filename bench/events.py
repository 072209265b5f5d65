"""Event flow benchmark: outbox commit -> relay -> JetStream -> consumer commit + ack,
the kit against a bare loop of the same shape, side by side (issue 22 goal 5).

    .venv/bin/python -m bench.events [--events 3000] [--rate 200] [--rounds 3] \
        [--variant kit=.] [--variant before=/tmp/before] [--variant bare=.+bare] \
        [--tracing on|off] [--json OUT] [--profile OUT.txt]

Starts its own nats-server (file storage in a temp dir) unless --nats-url is given. A
variant is NAME=TREE[+bare]: the source tree its kit is imported from (the work tree, or
a `git worktree add` of another commit for a before/after); with +bare, instead of the
kit, the bare loop below. Default: ``kit=.`` and ``bare=.+bare``. The variants run
alternately, round by round (the order rotates), each round in a fresh Python process,
which runs, exactly as a service pair would in one process:

- the kit: a producer committing one event per SQLite transaction through the kit's
  Outbox (with a business row, as a service's state change), in ``db.run`` as a
  service's store does, 8 commits in flight (as 8 RPCs), the OutboxRelay, and an
  EventConsumer applying each event to its own SQLite file (an analytics-style
  projection) and acking. With --tracing on (the default, the production default) the
  kit traces as in the mesh: each commit runs in a request scope carrying a traceparent
  (every tenth sampled, the mesh's sample ratio 0.1), the consumer opens its CONSUMER
  span per event, the sampled ones are exported to a Zipkin stand-in in the parent;
- bare: the same work without the kit, written plainly on nats-py and sqlite3 on the
  event loop's thread: the same envelope, the same two rows per commit (one
  transaction; a yield to the loop every 50 commits), js.publish_async of what was just
  committed with its id as Nats-Msg-Id (up to 64 acks awaited in flight, in order),
  and a pull consumer that, per event, commits the dedupe row and the projection in one
  transaction, then acks. No relay (no outbox read, no marking sent, no lease), no
  metrics, logs or tracing: the limit of this machine for this flow.

Per process, two measurements:
  1. throughput: --events events committed as fast as possible; events/s wall from the
     first commit to the last consumer commit, and events/s per Python core: the events
     over the process's CPU seconds (user + system, every thread: getrusage), which the
     other work on the machine does not change; nats-server's CPU per event beside it;
  2. lag: --lag-events (default 10 s worth) at a steady --rate; p50/p99 of the event's
     occurred_at (its commit) -> the consumer's commit (what a reader of the read model
     waits).

--profile OUT.txt: after the rounds, one more throughput run of the first variant
(--profile-events) under `py-spy record --native` (collapsed stacks in OUT.txt), and
where its CPU went (share of the samples that were running, by part of the flow).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

THIS_FILE = Path(__file__).resolve()
ROOT = THIS_FILE.parent.parent
PLACED = "order.OrderPlaced"
SUBJECT = "meshmart.order.OrderPlaced"
STREAM = "ORDERS"
COMMITTERS = 8  # concurrent producers (as RPCs in flight), each awaiting its commit
YIELD_EVERY = 50  # bare: commits (on the loop's thread) between two yields to the loop
BARE_WINDOW = 64  # publish acks in flight in the bare loop (the relay's window)
SAMPLE_RATIO = 0.1  # tools/mesh/observability.py's default: every tenth trace sampled

# Runs in the variant's interpreter: its tree first on the path, this file's child().
CHILD = """
import importlib.util, sys
tree, bench = sys.argv[1], sys.argv[2]
sys.path[:0] = [tree, tree + "/gen/python"]
spec = importlib.util.spec_from_file_location("bench_events_child", bench)
module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.exit(module.child(sys.argv[3:]))
"""
RESULT = "BENCH-RESULT "


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def process_cpu() -> float:
    """CPU seconds (user + system) of this process, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pid_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def traceparent(n: int) -> str:
    """What an RPC's scope would carry: a trace of its own, every tenth sampled."""
    flags = "01" if n % round(1 / SAMPLE_RATIO) == 0 else "00"
    return f"00-{n + 1:032x}-{n + 1:016x}-{flags}"


# ------------------------------------------------------------------------------ child


@dataclass
class Throughput:
    events: int
    wall_s: float
    cpu_s: float
    server_cpu_s: float
    publish_p50_ms: float
    publish_p99_ms: float

    @property
    def per_second(self) -> float:
        return self.events / self.wall_s

    @property
    def per_core(self) -> float:
        return self.events / self.cpu_s


@dataclass
class Lag:
    events: int
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float


class Flow:
    """One variant's producer, relay (or bare publisher) and consumer, running."""

    async def commit(self, n: int) -> None:
        raise NotImplementedError

    def applied(self) -> int:
        raise NotImplementedError

    def lags(self) -> list[float]:
        raise NotImplementedError

    def publish_seconds(self) -> list[float]:
        raise NotImplementedError


async def fresh_stream(url: str) -> None:
    """ORDERS from empty, with no consumer left from an earlier phase."""
    import nats
    import nats.js.errors

    from services.kit.events import ensure_streams

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM)
        await ensure_streams(js)
    finally:
        await nc.close()


def order_placed(n: int) -> Any:
    from meshmart.order.v1 import events_pb2, order_pb2

    order = order_pb2.Order(
        order_id=f"ord-{n}",
        lines=[order_pb2.OrderLine(product_id=f"sku-{1001 + n % 12}", quantity=1 + n % 3)],
    )
    return events_pb2.OrderPlaced(order=order)


PRODUCER_SQL = "CREATE TABLE orders (order_id TEXT PRIMARY KEY)"
SALES_SQL = "CREATE TABLE sales (product_id TEXT PRIMARY KEY, units INTEGER NOT NULL)"
UPSERT_SALE = (
    "INSERT INTO sales VALUES (?, ?) ON CONFLICT (product_id)"
    " DO UPDATE SET units = units + excluded.units"
)


def project(conn: Any, envelope: Any) -> None:
    """The consumer's effect: units sold per product (analytics' projection)."""
    from meshmart.order.v1 import events_pb2

    from services.kit.events import unpack

    for line in unpack(envelope, events_pb2.OrderPlaced).order.lines:
        conn.execute(UPSERT_SALE, (line.product_id, line.quantity))


@contextlib.asynccontextmanager
async def kit_flow(url: str, workdir: Path, name: str, tracing: bool) -> AsyncIterator[Flow]:
    from services.kit import context as rpc_context
    from services.kit.db import Database
    from services.kit.events import CONSUMER_MIGRATION, ORDERS, EventBus, EventConsumer
    from services.kit.outbox import OUTBOX_MIGRATION, Outbox, OutboxRelay

    producer_db = Database(workdir / f"{name}-producer.sqlite3", [PRODUCER_SQL, OUTBOX_MIGRATION])
    consumer_db = Database(workdir / f"{name}-consumer.sqlite3", [SALES_SQL, CONSUMER_MIGRATION])
    bus = EventBus(url, name=f"bench-{name}")
    await bus.start()
    outbox = Outbox("bench")
    relay = OutboxRelay(producer_db, bus, holder=name, outbox=outbox, record_timings=True)
    consumer = EventConsumer(
        bus, consumer_db, name=f"bench-{name}", stream=ORDERS, handlers={PLACED: project},
        record_lag=True,
    )

    def place(n: int) -> None:
        placed = order_placed(n)
        with producer_db.transaction() as conn:
            conn.execute("INSERT INTO orders VALUES (?)", (placed.order.order_id,))
            outbox.add(conn, PLACED, placed)

    class KitFlow(Flow):
        async def commit(self, n: int) -> None:
            # As a service's RPC: in its request scope, the store's work in db.run.
            if not tracing:
                await producer_db.run(place, n)
                return
            with rpc_context.request_scope(traceparent=traceparent(n)):
                await producer_db.run(place, n)

        def applied(self) -> int:
            return consumer.stats.applied

        def lags(self) -> list[float]:
            return consumer.stats.lags

        def publish_seconds(self) -> list[float]:
            return relay.stats.publish_seconds or []

    await relay.start()
    await consumer.start()
    try:
        yield KitFlow()
    finally:
        await consumer.stop()
        await relay.stop()
        await bus.close()
        producer_db.close()
        consumer_db.close()


def bare_db(path: Path, schema: list[str]) -> sqlite3.Connection:
    # The kit's SQLite settings (services/kit/dialect.py): WAL, synchronous NORMAL.
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in schema:
        conn.execute(statement)
    return conn


@contextlib.asynccontextmanager
async def bare_flow(url: str, workdir: Path, name: str) -> AsyncIterator[Flow]:
    import nats
    from meshmart.common.v1 import common_pb2
    from meshmart.order.v1 import events_pb2
    from nats.js.api import AckPolicy, ConsumerConfig

    producer = bare_db(workdir / f"{name}-producer.sqlite3", [
        PRODUCER_SQL,
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL"
        " UNIQUE, envelope BLOB NOT NULL, created_us INTEGER NOT NULL)",
    ])
    consumer = bare_db(workdir / f"{name}-consumer.sqlite3", [
        SALES_SQL, "CREATE TABLE processed (event_id TEXT PRIMARY KEY) WITHOUT ROWID",
    ])
    nc = await nats.connect(url)
    js = nc.jetstream()
    durable = f"bare-{name}"
    await js.add_consumer(STREAM, ConsumerConfig(
        durable_name=durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=SUBJECT,
        max_ack_pending=1000,
    ))
    sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM)
    # Committed, to publish (in commit order), then in flight (acks awaited in order).
    outgoing: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    acks: asyncio.Queue[tuple[float, asyncio.Future[Any]]] = asyncio.Queue(BARE_WINDOW)
    timings: list[float] = []
    lags: list[float] = []
    applied = [0]

    async def publish() -> None:
        while True:
            event_id, data = await outgoing.get()
            started = time.perf_counter()
            future = await js.publish_async(SUBJECT, data, headers={"Nats-Msg-Id": event_id})
            await acks.put((started, future))

    async def take_acks() -> None:
        while True:
            started, future = await acks.get()
            await future
            timings.append(time.perf_counter() - started)

    async def consume() -> None:
        caught_up = False
        while True:
            try:
                # The kit's way round nats-py's batch fetch (services/kit/events/consumer.py).
                msgs = await (sub.fetch(1, timeout=5.0) if caught_up
                              else sub.fetch(64, timeout=0.05))
            except TimeoutError:
                caught_up = True
                continue
            caught_up = len(msgs) < 64 and not msgs[-1].metadata.num_pending
            for msg in msgs:
                envelope = common_pb2.EventEnvelope()
                envelope.ParseFromString(msg.data)
                placed = events_pb2.OrderPlaced()
                envelope.payload.Unpack(placed)
                consumer.execute("BEGIN IMMEDIATE")
                seen = consumer.execute(
                    "SELECT 1 FROM processed WHERE event_id = ?", (envelope.id,)).fetchone()
                if seen is None:
                    for line in placed.order.lines:
                        consumer.execute(UPSERT_SALE, (line.product_id, line.quantity))
                    consumer.execute("INSERT INTO processed VALUES (?)", (envelope.id,))
                consumer.execute("COMMIT")
                if seen is None:
                    occurred = envelope.occurred_at.seconds + envelope.occurred_at.nanos / 1e9
                    lags.append(time.time() - occurred)
                    applied[0] += 1
                await msg.ack()

    class BareFlow(Flow):
        async def commit(self, n: int) -> None:
            placed = order_placed(n)
            envelope = common_pb2.EventEnvelope(
                id=str(uuid.uuid4()), type=PLACED, source="bench", traceparent=traceparent(n))
            envelope.occurred_at.GetCurrentTime()
            envelope.payload.Pack(placed)
            data = envelope.SerializeToString()
            producer.execute("BEGIN IMMEDIATE")
            producer.execute("INSERT INTO orders VALUES (?)", (placed.order.order_id,))
            producer.execute(
                "INSERT INTO outbox (event_id, envelope, created_us) VALUES (?, ?, ?)",
                (envelope.id, data, time.time_ns() // 1000))
            producer.execute("COMMIT")
            outgoing.put_nowait((envelope.id, data))  # published after its commit
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the publisher and the consumer run

        def applied(self) -> int:
            return applied[0]

        def lags(self) -> list[float]:
            return lags

        def publish_seconds(self) -> list[float]:
            return timings

    tasks = [asyncio.create_task(f()) for f in (publish, take_acks, consume)]
    try:
        yield BareFlow()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
        producer.close()
        consumer.close()


@contextlib.contextmanager
def traced(zipkin_url: str | None) -> Iterator[None]:
    """The kit's tracing as a service has it (sampled spans exported to ``zipkin_url``)."""
    if zipkin_url is None:
        yield
        return
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    from services.kit import tracing

    setup = tracing.build_tracing(
        "bench", "bench-1", ZipkinExporter(endpoint=zipkin_url, timeout=5),
        sample_ratio=SAMPLE_RATIO,
    )
    try:
        with tracing.use(setup):
            yield
    finally:
        setup.shutdown()


def flow(args: argparse.Namespace, workdir: Path, name: str) -> Any:
    if args.mode == "bare":
        return bare_flow(args.url, workdir, name)
    return kit_flow(args.url, workdir, name, tracing=args.zipkin is not None)


async def drained(flow: Flow, total: int) -> None:
    # Neither side has a completion signal; a 2 ms poll of a counter costs nothing here.
    async with asyncio.timeout(120):
        while flow.applied() < total:  # noqa: ASYNC110
            await asyncio.sleep(0.002)


async def measure_throughput(args: argparse.Namespace, workdir: Path) -> Throughput:
    await fresh_stream(args.url)
    async with flow(args, workdir, "throughput") as running:
        cpu_before, server_before = process_cpu(), pid_cpu(args.server_pid)
        started = time.perf_counter()

        async def committer(first: int) -> None:
            for n in range(first, args.events, COMMITTERS):
                await running.commit(n)

        await asyncio.gather(*(committer(k) for k in range(COMMITTERS)))
        await drained(running, args.events)
        wall = time.perf_counter() - started
        cpu, server = process_cpu() - cpu_before, pid_cpu(args.server_pid) - server_before
        publishes = running.publish_seconds()
    return Throughput(args.events, wall, cpu, server, percentile(publishes, 50) * 1000,
                      percentile(publishes, 99) * 1000)


async def measure_lag(args: argparse.Namespace, workdir: Path) -> Lag:
    await fresh_stream(args.url)
    async with flow(args, workdir, "lag") as running:
        interval = 1.0 / args.rate
        started = time.perf_counter()
        for n in range(args.lag_events):
            await running.commit(n)
            # Steady rate, not a burst: each commit at its slot.
            await asyncio.sleep(max(0.0, started + (n + 1) * interval - time.perf_counter()))
        await drained(running, args.lag_events)
        lags = running.lags()
    return Lag(len(lags), args.rate, percentile(lags, 50) * 1000, percentile(lags, 99) * 1000,
               max(lags) * 1000)


async def run_child(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="meshmart-bench-events-") as tmp, \
            traced(args.zipkin):
        result: dict[str, Any] = {}
        if args.events:
            result["throughput"] = asdict(await measure_throughput(args, Path(tmp)))
        if args.lag_events:
            result["lag"] = asdict(await measure_lag(args, Path(tmp)))
        return result


def child(argv: list[str]) -> int:
    """One round of one variant (in the variant's tree): a JSON line on stdout."""
    parser = argparse.ArgumentParser(prog="bench.events child")
    parser.add_argument("--mode", choices=("kit", "bare"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--lag-events", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--server-pid", type=int, default=None)
    parser.add_argument("--zipkin", default=None)
    args = parser.parse_args(argv)
    result = asyncio.run(run_child(args))
    sys.stdout.write(RESULT + json.dumps(result) + "\n")
    return 0


# ----------------------------------------------------------------------------- parent


@dataclass(frozen=True)
class Variant:
    name: str
    tree: Path
    bare: bool = False

    @classmethod
    def parse(cls, spec: str) -> Variant:
        name, sep, rest = spec.partition("=")
        tree, *flags = rest.split("+")
        if not name or not sep or any(flag != "bare" for flag in flags):
            raise argparse.ArgumentTypeError(f"--variant {spec!r}: expected NAME=TREE[+bare]")
        path = Path(tree or ".").resolve()
        if not (path / "services" / "kit" / "outbox.py").is_file():
            raise argparse.ArgumentTypeError(f"--variant {spec!r}: {path} has no services/kit")
        return cls(name, path, bool(flags))


@dataclass(frozen=True)
class Round:
    variant: str
    throughput: Throughput | None
    lag: Lag | None


def child_command(variant: Variant, url: str, *, events: int, lag_events: int, rate: float,
                  server_pid: int | None, zipkin: str | None) -> list[str]:
    command = [sys.executable, "-c", CHILD, str(variant.tree), str(THIS_FILE),
               "--mode", "bare" if variant.bare else "kit", "--url", url,
               "--events", str(events), "--lag-events", str(lag_events), "--rate", str(rate)]
    if server_pid is not None:
        command += ["--server-pid", str(server_pid)]
    if zipkin is not None and not variant.bare:
        command += ["--zipkin", zipkin]
    return command


def child_env(variant: Variant) -> dict[str, str]:
    path = [str(variant.tree), str(variant.tree / "gen" / "python")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def run_round(variant: Variant, command: list[str]) -> Round:
    done = subprocess.run(command, cwd=variant.tree, env=child_env(variant), text=True,
                          capture_output=True, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{variant.name}: exit code {done.returncode}\n{tail}")
    data = json.loads(lines[-1][len(RESULT):])
    throughput = Throughput(**data["throughput"]) if "throughput" in data else None
    lag = Lag(**data["lag"]) if "lag" in data else None
    return Round(variant.name, throughput, lag)


def describe(r: Round) -> str:
    parts = []
    if (t := r.throughput) is not None:
        parts.append(f"{t.per_second:>6,.0f} events/s wall, {t.per_core:>6,.0f} per Python core "
                     f"({t.cpu_s / t.events * 1000:.3f} ms CPU/event; nats-server "
                     f"{t.server_cpu_s / t.events * 1000:.3f} ms)")
    if (lag := r.lag) is not None:
        parts.append(f"lag at {lag.rate:.0f}/s p50 {lag.p50_ms:.2f} ms, p99 {lag.p99_ms:.2f} ms")
    return "; ".join(parts)


def summarise(rounds: list[Round], variants: list[Variant]) -> dict[str, dict[str, float]]:
    """Each variant's medians over its rounds."""
    summary: dict[str, dict[str, float]] = {}
    for variant in variants:
        mine = [r for r in rounds if r.variant == variant.name]
        ts = [r.throughput for r in mine if r.throughput is not None]
        lags = [r.lag for r in mine if r.lag is not None]
        figures: dict[str, float] = {}
        if ts:
            figures |= {
                "per_second": statistics.median(t.per_second for t in ts),
                "per_core": statistics.median(t.per_core for t in ts),
                "cpu_ms_per_event": statistics.median(t.cpu_s / t.events * 1000 for t in ts),
                "server_ms_per_event": statistics.median(
                    t.server_cpu_s / t.events * 1000 for t in ts),
                "publish_p50_ms": statistics.median(t.publish_p50_ms for t in ts),
                "publish_p99_ms": statistics.median(t.publish_p99_ms for t in ts),
            }
        if lags:
            figures |= {
                "lag_p50_ms": statistics.median(lag.p50_ms for lag in lags),
                "lag_p99_ms": statistics.median(lag.p99_ms for lag in lags),
                "lag_max_ms": max(lag.max_ms for lag in lags),
            }
        summary[variant.name] = figures
    return summary


def print_summary(summary: dict[str, dict[str, float]], variants: list[Variant],
                  rounds: list[Round]) -> None:
    bare = next((v.name for v in variants if v.bare), None)
    print("\nmedians over the rounds (per round in brackets):")
    print(f"{'variant':<10} {'events/s wall':>13} {'per Python core':>15} {'CPU/event':>10} "
          f"{'nats-server':>11} {'lag p50':>9} {'lag p99':>9}  per core by round")
    for variant in variants:
        f = summary[variant.name]
        by_round = ", ".join(f"{r.throughput.per_core:,.0f}" for r in rounds
                             if r.variant == variant.name and r.throughput is not None)
        vs_bare = (f"  {f['per_core'] / summary[bare]['per_core']:.2f}x bare's per core"
                   if bare and variant.name != bare and "per_core" in f else "")
        print(f"{variant.name:<10} {f.get('per_second', 0):>13,.0f} {f.get('per_core', 0):>15,.0f} "
              f"{f.get('cpu_ms_per_event', 0):>7.3f} ms {f.get('server_ms_per_event', 0):>8.3f} ms "
              f"{f.get('lag_p50_ms', 0):>6.2f} ms {f.get('lag_p99_ms', 0):>6.2f} ms  "
              f"({by_round}){vs_bare}")
    for variant in variants:
        f = summary[variant.name]
        if "publish_p50_ms" in f:
            print(f"{variant.name}: publish-with-ack p50 {f['publish_p50_ms']:.2f} ms, "
                  f"p99 {f['publish_p99_ms']:.2f} ms (the relay's, or bare's, up to 64 in "
                  f"flight); lag max {f.get('lag_max_ms', 0):.1f} ms")


# ---------------------------------------------------------------------------- profile

# Where a running sample is: the first part found from the leaf up, trying the kit's and
# the benchmark's own parts first, then nats-py's, the thread hand-off, the loop.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("tracing and propagation (spans, scope, traceparent)",
     ("services/kit/tracing.py", "opentelemetry/", "services/kit/context.py")),
    ("logging", ("structlog/", "services/kit/logging.py", "logging/__init__.py")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("consumer: decode + unpack the envelope", ("decode_envelope", "unpack (", "Unpack")),
    ("consumer: commit (SQLite: dedupe row, projection, COMMIT)", (
        "EventConsumer._apply", "apply_once")),
    ("consumer: ack", ("EventConsumer._ack", "Msg.ack")),
    ("consumer: fetch (pull request, messages in)", ("PullSubscription.fetch",)),
    ("consumer: rest", ("EventConsumer.",)),
    ("relay: read pending rows (SQLite)", ("OutboxRelay._pending",)),
    ("relay: mark sent (SQLite)", ("OutboxRelay._mark_sent",)),
    ("relay: lease (SQLite)", ("OutboxRelay._take_lease",)),
    ("relay: publish (headers, send, ack futures)", (
        "publish_pipelined", "EventBus.publish", "OutboxRelay._publish_window")),
    ("relay: rest", ("OutboxRelay.",)),
    ("producer: envelope (uuid, timestamp, Any pack)", ("new_envelope",)),
    ("producer: outbox row", ("add_event", "Outbox.add")),
    ("producer: business transaction (SQLite commit)", ("place (events.py", "KitFlow.commit")),
]
FALLBACK_PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("nats-py: socket writes (flusher)", ("Client._flusher",)),
    ("nats-py: reading and parsing (read loop, dispatch)", (
        "Client._read_loop", "Client._process_msg", "Parser.parse", "_wait_for_msgs")),
    ("nats-py: other", ("nats/",)),
    ("thread hand-off (run_in_executor, wake-ups)", (
        "run_in_executor", "call_soon_threadsafe", "_chain_future", "_WorkItem.run",
        "_write_to_self", "_read_from_self", "Database.run")),
    ("asyncio loop itself", ("asyncio/", "_asynciomodule", "selectors.py")),
]
IDLE = ("epoll_wait", "select_epoll_poll", "_queue_SimpleQueue_get", "pthread_cond_",
        "logged_process.py", "take_gil", "Thread.join", "Event.wait")


def _part(frames: list[str], parts: list[tuple[str, tuple[str, ...]]]) -> str | None:
    for frame in reversed(frames):
        for name, markers in parts:
            if any(marker in frame for marker in markers):
                return name
    return None


def where_cpu_went(path: Path) -> list[tuple[str, float, int]]:
    """(part, share, samples) of the running samples in py-spy's collapsed stacks."""
    parts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(marker in frame for frame in frames[-6:] for marker in IDLE):
            continue  # waiting (loop poll, a thread's queue, the GIL, a pipe read)
        part = (_part(frames, PARTS) or _part(frames, FALLBACK_PARTS)
                or "other (start-up, imports, the benchmark's own loop)")
        parts[part] += int(count)
    total = sum(parts.values()) or 1
    return [(part, n / total, n) for part, n in parts.most_common()]


def profile(variant: Variant, url: str, out: Path, events: int, server_pid: int | None,
            zipkin: str | None) -> None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("--profile: py-spy is missing (.venv/bin/pip install py-spy)")
        return
    command = [spy, "record", "--native", "--rate", "250", "--format", "raw", "-o", str(out),
               "--", *child_command(variant, url, events=events, lag_events=0, rate=1.0,
                                    server_pid=server_pid, zipkin=zipkin)]
    r = run_round(variant, command)
    print(f"\nprofile of {variant.name} ({events} events, py-spy --native, {out}): "
          f"{describe(r)}")
    for part, share, n in where_cpu_went(out):
        print(f"  {share:6.1%} {n:6d}  {part}")


# ------------------------------------------------------------------------------- main


@contextlib.contextmanager
def zipkin_sink(on: bool) -> Iterator[str | None]:
    if not on:
        yield None
        return
    from bench.catalog_cpu import ZipkinSink

    sink = ZipkinSink()
    try:
        yield sink.url
    finally:
        sink.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000, help="per throughput run")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s of the lag run")
    parser.add_argument("--lag-events", type=int, default=None,
                        help="events of the lag run (default 10 s at --rate)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", type=Variant.parse, default=None)
    parser.add_argument("--tracing", choices=("on", "off"), default="on")
    parser.add_argument("--nats-url", default=None, help="use this server instead of a new one")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--profile-events", type=int, default=20000)
    args = parser.parse_args(argv)
    variants: list[Variant] = args.variant or [Variant("kit", ROOT), Variant("bare", ROOT, True)]
    lag_events = args.lag_events if args.lag_events is not None else int(args.rate * 10)
    load_start = os.getloadavg()[0]
    print(f"load average {load_start:.1f}; {os.cpu_count()} cores; {args.rounds} rounds; "
          f"{args.events} events per throughput run, {lag_events} at {args.rate:.0f}/s for "
          f"the lag; the kit's tracing {args.tracing}", flush=True)
    from harness.nats_server import NatsServer

    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="meshmart-bench-events-") as tmp, \
            zipkin_sink(args.tracing == "on") as zipkin:
        server = None
        url = args.nats_url
        if url is None:
            server = NatsServer(Path(tmp) / "nats")
            server.start()
            url = server.url
        pid = server.pid if server else None
        try:
            for r in range(args.rounds):
                for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
                    done = run_round(variant, child_command(
                        variant, url, events=args.events, lag_events=lag_events,
                        rate=args.rate, server_pid=pid, zipkin=zipkin))
                    rounds.append(done)
                    print(f"round {r + 1} {variant.name:<8} {describe(done)} "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
            summary = summarise(rounds, variants)
            print_summary(summary, variants, rounds)
            if args.profile is not None:
                profile(variants[0], url, args.profile, args.profile_events, pid, zipkin)
        finally:
            if server is not None:
                server.stop()
    load_end = os.getloadavg()[0]
    print(f"(load average at the end {load_end:.1f})")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "variants": [{"name": v.name, "tree": str(v.tree), "bare": v.bare}
                         for v in variants],
            "events": args.events, "lag_events": lag_events, "rate": args.rate,
            "tracing": args.tracing, "load_average": [load_start, load_end],
            "summary": summary,
            "rounds": [asdict(r) for r in rounds],
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
