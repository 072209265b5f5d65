"""The event figures Prometheus scrapes: outbox backlog, events consumed, dead letters, lag."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2
from prometheus_client import REGISTRY

from harness.wait import until
from services.kit.db import Database
from services.kit.events import ORDERS, EventBus, EventConsumer, EventSettings, unpack
from services.kit.outbox import Outbox, OutboxRelay
from tests.events.helpers import PLACED, open_db, placed, record_effect

FAST_RETRIES = EventSettings(max_deliveries=2, retry_delay_seconds=0.05, ack_wait_seconds=5.0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def commit(db: Database, outbox: Outbox, *order_ids: str) -> None:
    for order_id in order_ids:
        with db.transaction() as conn:
            conn.execute("INSERT INTO notes (order_id, body) VALUES (?, 'placed')", (order_id,))
            outbox.add(conn, PLACED, placed(order_id))


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[EventBus]:
    bus = EventBus(nats_url, name="test-metrics")
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


async def test_the_outbox_backlog_is_what_is_not_yet_published(
    tmp_path: Path, bus: EventBus
) -> None:
    db = open_db(tmp_path / "backlog.sqlite3")
    outbox = Outbox("svc")
    relay = OutboxRelay(db, bus, holder="metrics-test", outbox=outbox)
    commit(db, outbox, "ord-1", "ord-2", "ord-3")
    # Counted at scrape time, from the file: no relay has run yet.
    assert sample("meshmart_outbox_pending_events", db="backlog.sqlite3") == 3
    published = sample("meshmart_outbox_published_total", db="backlog.sqlite3")
    await relay.start()
    try:
        await until(
            lambda: sample("meshmart_outbox_pending_events", db="backlog.sqlite3") == 0,
            20, "the backlog drained",
        )
    finally:
        await relay.stop()
    assert sample("meshmart_outbox_published_total", db="backlog.sqlite3") - published == 3


async def test_consumed_events_dead_letters_and_lag_are_counted(
    tmp_path: Path, bus: EventBus
) -> None:
    db = open_db(tmp_path / "consumer.sqlite3")
    source = open_db(tmp_path / "source.sqlite3")
    outbox = Outbox("svc")

    def picky(conn: sqlite3.Connection, envelope: common_pb2.EventEnvelope) -> None:
        if unpack(envelope, events_pb2.OrderPlaced).order.order_id == "ord-poison":
            raise ValueError("never")
        record_effect(conn, envelope)

    name = "metrics-ledger"
    consumer = EventConsumer(
        bus, db, name=name, stream=ORDERS, handlers={PLACED: picky}, settings=FAST_RETRIES
    )
    before = {
        "applied": sample(
            "meshmart_events_consumed_total", consumer=name, type=PLACED, result="applied"
        ),
        "dead": sample("meshmart_events_dead_lettered_total", consumer=name, type=PLACED),
        "lag": sample("meshmart_event_consumer_lag_seconds_count", consumer=name),
    }
    relay = OutboxRelay(source, bus, holder="metrics-source", outbox=outbox)
    commit(source, outbox, "ord-a", "ord-poison", "ord-b")
    await relay.start()
    await consumer.start()
    try:
        await until(
            lambda: (
                sample("meshmart_events_dead_lettered_total", consumer=name, type=PLACED)
                - before["dead"]
                == 1
            ),
            20, "the dead letter counted",
        )
        await until(
            lambda: (
                sample(
                    "meshmart_events_consumed_total", consumer=name, type=PLACED, result="applied"
                )
                - before["applied"]
                >= 2
            ),
            20, "two events applied",
        )
    finally:
        await consumer.stop()
        await relay.stop()
    assert (
        sample("meshmart_events_consumed_total", consumer=name, type=PLACED, result="failed") >= 2
    )
    assert sample("meshmart_event_consumer_lag_seconds_count", consumer=name) - before["lag"] >= 2
    assert sample("meshmart_event_consumer_pending_messages", consumer=name) == 0
