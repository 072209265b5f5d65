"""The transactional outbox and its relay, against a real nats-server, on real SQLite
and again on PostgreSQL (harness/postgres.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient

from harness import ROOT
from harness.nats_server import NatsServer
from harness.postgres import Databases
from harness.wait import until
from services.kit.db import Database
from services.kit.events import (
    MSG_ID_HEADER,
    ORDERS,
    EventBus,
    EventConsumer,
    new_envelope,
)
from services.kit.outbox import Outbox, OutboxRelay, add_event
from tests.events.helpers import (
    PLACED,
    effects,
    open_db,
    order_ids_in,
    placed,
    record_effect,
    stream_messages,
)


def commit_orders(db: Database, outbox: Outbox, order_ids: list[str]) -> None:
    """One state change per order, each with its event, each in its own transaction."""
    for order_id in order_ids:
        with db.transaction() as conn:
            conn.execute("INSERT INTO notes (order_id, body) VALUES (?, 'placed')", (order_id,))
            outbox.add(conn, PLACED, placed(order_id))


def outbox_rows(db: Database) -> list[tuple[str, bool]]:
    rows = db.read().execute("SELECT event_id, sent_us IS NOT NULL FROM outbox ORDER BY seq")
    return [(row[0], bool(row[1])) for row in rows]


async def ids_in_stream(url: str) -> list[str]:
    client = await nats.connect(url)
    try:
        return await order_ids_in(client)
    finally:
        await client.close()


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[EventBus]:
    bus = EventBus(nats_url, name="test-relay")
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


async def test_the_event_row_commits_with_the_state_change_or_not_at_all(
    databases: Databases,
) -> None:
    db = open_db(databases.target("svc", "svc.sqlite3"))
    outbox = Outbox("svc")
    commit_orders(db, outbox, ["ord-1"])

    with pytest.raises(RuntimeError, match="fails after"), db.transaction() as conn:
        conn.execute("INSERT INTO notes (order_id, body) VALUES ('ord-2', 'placed')")
        outbox.add(conn, PLACED, placed("ord-2"))
        raise RuntimeError("the change fails after its event was written")

    notes = [row[0] for row in db.read().execute("SELECT order_id FROM notes")]
    assert notes == ["ord-1"]
    [(_, sent)] = outbox_rows(db)
    assert not sent
    stored = db.read().execute("SELECT event_type, subject FROM outbox").fetchone()
    assert tuple(stored) == (PLACED, "meshmart.order.OrderPlaced")
    # Outside a transaction there is no state change to go with it: refused.
    with pytest.raises(RuntimeError, match=r"inside db\.transaction"):
        add_event(db.read(), new_envelope(PLACED, placed("ord-3"), source="svc"))


async def test_the_relay_publishes_in_commit_order_with_the_event_id_as_msg_id(
    databases: Databases, bus: EventBus, nc: NatsClient
) -> None:
    db = open_db(databases.target("svc", "svc.sqlite3"))
    outbox = Outbox("svc")
    order_ids = [f"ord-{i:03d}" for i in range(30)]
    commit_orders(db, outbox, order_ids)
    relay = OutboxRelay(db, bus, holder="svc-1", outbox=outbox, batch_size=7)
    await relay.start()
    try:
        await until(lambda: relay.pending_count() == 0, 20, "the outbox to drain")
    finally:
        await relay.stop()

    assert await order_ids_in(nc) == order_ids
    messages = await stream_messages(nc, ORDERS.name)
    assert [(m.headers or {}).get(MSG_ID_HEADER) for m in messages] == [
        event_id for event_id, _ in outbox_rows(db)
    ]
    assert all(sent for _, sent in outbox_rows(db))
    assert (relay.stats.published, relay.stats.duplicates) == (30, 0)


async def test_an_event_sent_again_is_dropped_by_jetstream(
    databases: Databases, bus: EventBus, nc: NatsClient
) -> None:
    db = open_db(databases.target("svc", "svc.sqlite3"))
    commit_orders(db, Outbox("svc"), ["ord-1", "ord-2", "ord-3"])
    relay = OutboxRelay(db, bus, holder="svc-1")
    assert await relay.publish_pending() == 3
    # As if the relay had died after the acks and before marking the rows sent.
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET sent_us = NULL")

    assert await relay.publish_pending() == 3

    assert relay.stats.duplicates == 3
    assert await order_ids_in(nc) == ["ord-1", "ord-2", "ord-3"]


async def test_the_relay_waits_out_a_broker_outage_and_loses_nothing(
    databases: Databases, nats_server: NatsServer, bus: EventBus
) -> None:
    db = open_db(databases.target("svc", "svc.sqlite3"))
    outbox = Outbox("svc")
    relay = OutboxRelay(db, bus, holder="svc-1", outbox=outbox, poll_interval_seconds=0.1)
    await relay.start()
    try:
        commit_orders(db, outbox, ["ord-1", "ord-2"])
        await until(lambda: relay.pending_count() == 0, 20, "the first events")

        nats_server.kill()
        commit_orders(db, outbox, ["ord-3", "ord-4", "ord-5"])
        await until(lambda: relay.stats.failures > 0, 20, "a failed publish")
        # Committed while the broker is down: kept, in order, not skipped.
        assert relay.pending_count() == 3

        nats_server.start()
        await until(lambda: relay.pending_count() == 0, 30, "the backlog")
    finally:
        await relay.stop()

    assert await ids_in_stream(nats_server.url) == ["ord-1", "ord-2", "ord-3", "ord-4", "ord-5"]


async def test_an_event_committed_while_nats_is_down_arrives_exactly_once(
    databases: Databases, nats_server: NatsServer, nats_url: str
) -> None:
    producer_db = open_db(databases.target("producer", "producer.sqlite3"))
    consumer_db = open_db(databases.target("consumer", "consumer.sqlite3"))
    outbox = Outbox("svc")
    nats_server.kill()
    commit_orders(producer_db, outbox, ["ord-1"])

    # Both start while the broker is down: they connect when it comes back.
    producer_bus = EventBus(nats_url, name="producer")
    consumer_bus = EventBus(nats_url, name="consumer")
    relay = OutboxRelay(producer_db, producer_bus, holder="svc-1", outbox=outbox)
    consumer = EventConsumer(
        consumer_bus, consumer_db, name="ledger", stream=ORDERS, handlers={PLACED: record_effect}
    )
    for worker in (producer_bus, consumer_bus, relay, consumer):
        await worker.start()
    try:
        # The outage: both have tried the broker and are retrying their connection now.
        await until(lambda: producer_bus.errors_seen > 0 and consumer_bus.errors_seen > 0,
                    20, "both buses to fail a connect")
        assert relay.pending_count() == 1 and effects(consumer_db) == []
        nats_server.start()
        await until(lambda: effects(consumer_db) == ["ord-1"], 30, "delivery")
        await until(lambda: relay.pending_count() == 0, 20, "the row marked sent")
    finally:
        for worker in (consumer, relay, consumer_bus, producer_bus):
            await worker.stop()

    assert await ids_in_stream(nats_url) == ["ord-1"]
    assert effects(consumer_db) == ["ord-1"]


async def test_a_relay_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    databases: Databases, nats_url: str, bus: EventBus
) -> None:
    db_path = databases.target("svc", "svc.sqlite3")
    db = open_db(db_path)
    order_ids = [f"ord-{i:02d}" for i in range(20)]
    commit_orders(db, Outbox("svc"), order_ids)

    # A relay process that dies right after JetStream acked its 7th publish.
    crashed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.events.crashing_relay",
        str(db_path),
        nats_url,
        "7",
        cwd=ROOT,
    )
    assert await asyncio.wait_for(crashed.wait(), 60) == 9
    stored_before_crash = await ids_in_stream(nats_url)
    # What it took acks for, maybe more of its window in flight, never the whole outbox.
    assert 7 <= len(stored_before_crash) < 20
    assert stored_before_crash == order_ids[: len(stored_before_crash)]  # in commit order
    assert relay_pending(db) == 20  # it died before marking anything sent

    consumer_db = open_db(databases.target("consumer", "consumer.sqlite3"))
    consumer = EventConsumer(
        bus, consumer_db, name="ledger", stream=ORDERS, handlers={PLACED: record_effect}
    )
    relay = OutboxRelay(db, bus, holder="svc-2")
    await consumer.start()
    await relay.start()
    try:
        await until(lambda: len(effects(consumer_db)) == 20, 20, "every event applied")
    finally:
        await relay.stop()
        await consumer.stop()

    assert await ids_in_stream(nats_url) == order_ids
    # Re-sent, recognised by their Nats-Msg-Id, not stored twice.
    assert relay.stats.duplicates == len(stored_before_crash)
    assert effects(consumer_db) == order_ids
    assert consumer.stats.duplicates == 0


def relay_pending(db: Database) -> int:
    return int(db.read().execute("SELECT count(*) FROM outbox WHERE sent_us IS NULL").fetchone()[0])


async def test_two_relays_on_one_database_publish_one_at_a_time_in_order(
    databases: Databases, nats_url: str
) -> None:
    path = databases.target("shared", "shared.sqlite3")
    # Two processes' worth: two connections, two buses, two relays on one file.
    dbs = [open_db(path), open_db(path)]
    buses = [EventBus(nats_url, name=f"payment-{n}") for n in (1, 2)]
    outboxes = [Outbox("payment"), Outbox("payment")]
    relays = [
        OutboxRelay(db, b, holder=f"payment-{n}", outbox=o, poll_interval_seconds=0.05)
        for n, (db, b, o) in enumerate(zip(dbs, buses, outboxes, strict=True), start=1)
    ]
    for worker in (*buses, *relays):
        await worker.start()
    order_ids = [f"ord-{i:02d}" for i in range(40)]
    try:
        for i, order_id in enumerate(order_ids):
            commit_orders(dbs[i % 2], outboxes[i % 2], [order_id])
            await asyncio.sleep(0)
        await until(lambda: relays[0].pending_count() == 0, 20, "the shared outbox")
    finally:
        for relay in relays:
            await relay.stop()
        for b in buses:
            await b.close()

    assert await ids_in_stream(nats_url) == order_ids
    published = sorted(relay.stats.published for relay in relays)
    assert published == [0, 40]  # the lease holder published; the other stood by
