"""Event flow benchmark: outbox commit -> relay -> JetStream -> consumer commit + ack.

    .venv/bin/python -m bench.events [--events 3000] [--rate 200] [--nats-url URL]

Starts its own nats-server (file storage in a temp dir) unless --nats-url is given, and
runs, in one process, exactly what a service pair runs: a producer committing one event
per SQLite transaction through the kit's Outbox, the OutboxRelay, and an EventConsumer
applying each event to its own SQLite file (an analytics-style projection) and acking.

Three measurements:
  1. throughput: --events events committed as fast as possible; events/s from the first
     commit to the last consumer ack;
  2. lag: the same at a steady --rate (below saturation); p50/p99 of commit -> the
     consumer's commit (what a reader of the read model waits);
  3. JetStream publish-with-ack latency: the relay's own publishes (p50/p99), and a bare
     js.publish loop without the outbox for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2, order_pb2

from harness.nats_server import NatsServer
from services.kit.db import Database
from services.kit.events import (
    CONSUMER_MIGRATION,
    ORDERS,
    EventBus,
    EventConsumer,
    ensure_streams,
    unpack,
)
from services.kit.outbox import OUTBOX_MIGRATION, Outbox, OutboxRelay

PLACED = "order.OrderPlaced"
PRODUCER = ["CREATE TABLE orders (order_id TEXT PRIMARY KEY)", OUTBOX_MIGRATION]
CONSUMER = [
    "CREATE TABLE sales (product_id TEXT PRIMARY KEY, units INTEGER NOT NULL)",
    CONSUMER_MIGRATION,
]


def project(conn: sqlite3.Connection, envelope: common_pb2.EventEnvelope) -> None:
    order = unpack(envelope, events_pb2.OrderPlaced).order
    for line in order.lines:
        conn.execute(
            "INSERT INTO sales VALUES (?, ?) ON CONFLICT (product_id)"
            " DO UPDATE SET units = units + excluded.units",
            (line.product_id, line.quantity),
        )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


@contextlib.asynccontextmanager
async def pipeline(
    url: str, workdir: Path, name: str
) -> AsyncIterator[tuple[Database, Outbox, OutboxRelay, EventConsumer]]:
    # Each phase starts from an empty stream (its consumer reads from the first message).
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        await js.purge_stream(ORDERS.name)
    finally:
        await nc.close()
    producer_db = Database(workdir / f"{name}-producer.sqlite3", PRODUCER)
    consumer_db = Database(workdir / f"{name}-consumer.sqlite3", CONSUMER)
    bus = EventBus(url, name=f"bench-{name}")
    await bus.start()
    outbox = Outbox("bench")
    relay = OutboxRelay(producer_db, bus, holder=name, outbox=outbox, record_timings=True)
    consumer = EventConsumer(
        bus,
        consumer_db,
        name=f"bench-{name}",
        stream=ORDERS,
        handlers={PLACED: project},
        record_lag=True,
    )
    await relay.start()
    await consumer.start()
    try:
        yield producer_db, outbox, relay, consumer
    finally:
        await consumer.stop()
        await relay.stop()
        await bus.close()
        producer_db.close()
        consumer_db.close()


def commit(db: Database, outbox: Outbox, n: int) -> None:
    order = order_pb2.Order(
        order_id=f"ord-{n}",
        lines=[order_pb2.OrderLine(product_id=f"sku-{1001 + n % 12}", quantity=1 + n % 3)],
    )
    with db.transaction() as conn:
        conn.execute("INSERT INTO orders VALUES (?)", (order.order_id,))
        outbox.add(conn, PLACED, events_pb2.OrderPlaced(order=order))


async def drained(consumer: EventConsumer, total: int) -> None:
    # The consumer has no completion signal; a 2 ms poll of its counter costs nothing here.
    while consumer.stats.applied < total:  # noqa: ASYNC110
        await asyncio.sleep(0.002)


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of ``pid`` (the nats-server)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(url: str, workdir: Path, events: int, server_pid: int | None) -> None:
    async with pipeline(url, workdir, "throughput") as (db, outbox, relay, consumer):
        cpu_before = cpu_seconds()
        server_before = cpu_seconds(server_pid) if server_pid else 0.0
        started = time.perf_counter()
        for n in range(events):
            commit(db, outbox, n)
            if n % 50 == 0:
                await asyncio.sleep(0)  # let the relay and the consumer run, as RPCs would
        await drained(consumer, events)
        took = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        server = (cpu_seconds(server_pid) - server_before) if server_pid else 0.0
        publishes = relay.stats.publish_seconds or []
        print(
            f"1. throughput: {events} events in {took:.2f}s = {events / took:,.0f} events/s "
            "(commit -> publish-with-ack -> consumer commit + ack, one process)"
        )
        # CPU per event does not depend on what else runs on the machine: it gives the
        # capacity of a dedicated core.
        print(
            f"   CPU per event: {cpu / events * 1000:.2f} ms in Python (producer + relay + "
            f"consumer), {server / events * 1000:.2f} ms in nats-server -> about "
            f"{events / cpu:,.0f} events/s per Python core"
        )
        print(
            f"   relay publish-with-ack: p50 {ms(percentile(publishes, 50))}, "
            f"p99 {ms(percentile(publishes, 99))} ({len(publishes)} publishes, up to 64 "
            "in flight)"
        )


async def lag(url: str, workdir: Path, events: int, rate: float) -> None:
    async with pipeline(url, workdir, "lag") as (db, outbox, _, consumer):
        interval = 1.0 / rate
        started = time.perf_counter()
        for n in range(events):
            commit(db, outbox, n)
            # Steady rate, not a burst: each commit at its slot.
            await asyncio.sleep(max(0.0, started + (n + 1) * interval - time.perf_counter()))
        await drained(consumer, events)
        lags = consumer.stats.lags
        print(
            f"2. lag at {rate:.0f} events/s ({events} events): commit -> read model "
            f"p50 {ms(percentile(lags, 50))}, p99 {ms(percentile(lags, 99))}, "
            f"max {ms(max(lags))}"
        )


async def bare_publish(url: str, count: int) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        payload = b"x" * 200
        timings = []
        for n in range(count):
            t0 = time.perf_counter()
            await js.publish(
                "meshmart.order.BenchPing",
                payload,
                headers={"Nats-Msg-Id": f"bench-{time.time_ns()}-{n}"},
            )
            timings.append(time.perf_counter() - t0)
        print(
            f"3. bare js.publish with ack (nats-py, 200 B, dedupe id): "
            f"p50 {ms(percentile(timings, 50))}, p99 {ms(percentile(timings, 99))}, "
            f"mean {ms(statistics.fmean(timings))} ({count} publishes)"
        )
    finally:
        await nc.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="meshmart-bench-events-") as tmp:
        workdir = Path(tmp)
        server = None
        url = args.nats_url
        if url is None:
            server = NatsServer(workdir / "nats")
            server.start()
            url = server.url
        try:
            print(f"nats: {url}; sqlite in {workdir}")
            await throughput(url, workdir, args.events, server.pid if server else None)
            await lag(url, workdir, min(args.events, int(args.rate * 10)), args.rate)
            await bare_publish(url, args.events)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--nats-url", default=None, help="use this server instead of a new one")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
