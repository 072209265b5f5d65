"""Durable consumers: effect and event id in one commit, then the ack; redeliveries
recognised; a poison message dead-lettered after the limit while the rest flow."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2
from nats.aio.client import Client as NatsClient

from harness import ROOT
from harness.wait import until
from services.kit.events import (
    DEAD_LETTERS,
    MSG_ID_HEADER,
    ORDERS,
    STREAMS,
    EventBus,
    EventConsumer,
    EventSettings,
    StreamSpec,
    ensure_streams,
    new_envelope,
    subject_for,
    unpack,
)
from tests.events.helpers import (
    PLACED,
    consumer_state,
    effects,
    open_db,
    placed,
    record_effect,
    stream_messages,
)

FAST_RETRIES = EventSettings(max_deliveries=3, retry_delay_seconds=0.05, ack_wait_seconds=5.0)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[EventBus]:
    bus = EventBus(nats_url, name="test-consumer")
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


async def publish_placed(bus: EventBus, *order_ids: str) -> list[str]:
    """Publish OrderPlaced events directly (as a relay would); returns their ids."""
    ids = []
    for order_id in order_ids:
        envelope = new_envelope(PLACED, placed(order_id), source="test")
        await bus.publish(
            subject_for(PLACED), envelope.SerializeToString(), msg_id=envelope.id, event_type=PLACED
        )
        ids.append(envelope.id)
    return ids


async def test_streams_are_created_from_their_definition_and_ensured_idempotently(
    nc: NatsClient,
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    await ensure_streams(js)  # a second start changes nothing and does not fail
    infos = {info.config.name: info.config for info in await js.streams_info()}
    assert set(infos) == {spec.name for spec in STREAMS}
    orders = infos["ORDERS"]
    assert orders.subjects == ["meshmart.order.>"]
    assert orders.storage == "file"
    assert orders.duplicate_window == 3600.0

    # An edited definition is applied to the existing stream at the next start.
    edited = StreamSpec("ORDERS", ORDERS.subjects, ORDERS.description, duplicate_window=600.0)
    await ensure_streams(js, [edited])
    assert (await js.stream_info("ORDERS")).config.duplicate_window == 600.0


async def test_each_event_is_applied_once_with_its_id_recorded_then_acked(
    tmp_path: Path, bus: EventBus, nc: NatsClient
) -> None:
    db = open_db(tmp_path / "consumer.sqlite3")
    consumer = EventConsumer(
        bus, db, name="ledger", stream=ORDERS, handlers={PLACED: record_effect}
    )
    ids = await publish_placed(bus, "ord-1", "ord-2", "ord-3")
    await consumer.start()
    try:
        await until(lambda: len(effects(db)) == 3, 20, "three effects")
        await until(
            lambda: _settled(nc, "ORDERS", "ledger"), 20, "every message acknowledged"
        )
    finally:
        await consumer.stop()

    assert effects(db) == ["ord-1", "ord-2", "ord-3"]
    processed = db.read().execute(
        "SELECT event_id, stream, stream_seq FROM processed_events ORDER BY stream_seq"
    )
    assert [tuple(row) for row in processed] == [
        (ids[0], "ORDERS", 1),
        (ids[1], "ORDERS", 2),
        (ids[2], "ORDERS", 3),
    ]


async def _settled(nc: NatsClient, stream: str, name: str) -> bool:
    return await consumer_state(nc, stream, name) == (0, 0)


async def test_a_consumer_killed_after_its_commit_and_before_its_ack_applies_nothing_twice(
    tmp_path: Path, nats_url: str, bus: EventBus, nc: NatsClient
) -> None:
    db_path = tmp_path / "consumer.sqlite3"
    db = open_db(db_path)
    await publish_placed(bus, "ord-1")

    # The process commits the effect and the event id, then dies before acking.
    crashed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.events.crashing_consumer", str(db_path), nats_url, cwd=ROOT
    )
    assert await asyncio.wait_for(crashed.wait(), 60) == 9
    assert effects(db) == ["ord-1"]
    assert await consumer_state(nc, "ORDERS", "ledger") == (0, 1)  # delivered, not acked

    # Its replacement gets the message again (ack wait 1s) and recognises it.
    consumer = EventConsumer(
        bus,
        db,
        name="ledger",
        stream=ORDERS,
        handlers={PLACED: record_effect},
        settings=EventSettings(ack_wait_seconds=1.0),
    )
    await consumer.start()
    try:
        await until(lambda: consumer.stats.duplicates == 1, 20, "the redelivery")
        await until(lambda: _settled(nc, "ORDERS", "ledger"), 20, "the ack")
    finally:
        await consumer.stop()

    assert effects(db) == ["ord-1"]
    assert consumer.stats.applied == 0


async def test_a_poison_message_is_dead_lettered_after_the_limit_while_later_events_flow(
    tmp_path: Path, bus: EventBus, nc: NatsClient
) -> None:
    db = open_db(tmp_path / "consumer.sqlite3")

    def picky(conn: sqlite3.Connection, envelope: common_pb2.EventEnvelope) -> None:
        if unpack(envelope, events_pb2.OrderPlaced).order.order_id == "ord-poison":
            raise ValueError("cannot apply this one, ever")
        record_effect(conn, envelope)

    consumer = EventConsumer(
        bus, db, name="ledger", stream=ORDERS, handlers={PLACED: picky}, settings=FAST_RETRIES
    )
    [_, poison_id, _, _] = await publish_placed(bus, "ord-1", "ord-poison", "ord-2", "ord-3")
    await consumer.start()
    try:
        await until(lambda: consumer.stats.dead_lettered == 1, 20, "the dead letter")
        await until(lambda: _settled(nc, "ORDERS", "ledger"), 20, "nothing left pending")
    finally:
        await consumer.stop()

    assert effects(db) == ["ord-1", "ord-2", "ord-3"]
    assert consumer.stats.failures == 3  # every delivery up to the limit was tried
    [letter] = await stream_messages(nc, DEAD_LETTERS.name)
    headers = letter.headers or {}
    assert letter.subject == "meshmart.deadletter.ledger.order.OrderPlaced"
    assert headers["Meshmart-Deliveries"] == "3"
    assert headers["Meshmart-Original-Subject"] == "meshmart.order.OrderPlaced"
    assert headers["Meshmart-Original-Sequence"] == "2"
    assert "cannot apply this one" in headers["Meshmart-Error"]
    assert headers[MSG_ID_HEADER] == "dlq.ledger.ORDERS.2"
    original = common_pb2.EventEnvelope.FromString(letter.data or b"")
    assert original.id == poison_id
    # Not recorded as processed: fixed code can replay it from the dead-letter stream.
    assert (
        db.read()
        .execute("SELECT count(*) FROM processed_events WHERE event_id = ?", (poison_id,))
        .fetchone()[0]
        == 0
    )


async def test_an_undecodable_message_is_dead_lettered_at_its_first_delivery(
    tmp_path: Path, bus: EventBus, nc: NatsClient
) -> None:
    db = open_db(tmp_path / "consumer.sqlite3")
    consumer = EventConsumer(
        bus,
        db,
        name="ledger",
        stream=ORDERS,
        handlers={PLACED: record_effect},
        settings=FAST_RETRIES,
    )
    await bus.publish(subject_for(PLACED), b"\xff not protobuf", msg_id="junk-1", event_type=PLACED)
    await publish_placed(bus, "ord-1")
    await consumer.start()
    try:
        await until(lambda: effects(db) == ["ord-1"], 20, "the good event")
        await until(lambda: consumer.stats.dead_lettered == 1, 20, "the dead letter")
    finally:
        await consumer.stop()

    [letter] = await stream_messages(nc, DEAD_LETTERS.name)
    assert letter.subject == "meshmart.deadletter.ledger.undecodable"
    assert (letter.headers or {})["Meshmart-Deliveries"] == "1"
