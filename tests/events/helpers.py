"""What the event tests share: a tiny service schema, event builders, reading streams."""

from __future__ import annotations

from pathlib import Path

from meshmart.common.v1 import common_pb2
from meshmart.order.v1 import events_pb2, order_pb2
from nats.aio.client import Client as NatsClient
from nats.js.api import RawStreamMsg

from services.kit.db import Connection, Database
from services.kit.events import CONSUMER_MIGRATION, decode_envelope, unpack
from services.kit.outbox import OUTBOX_MIGRATION

# A service's own table next to the kit's: "notes" stands for any state change.
SCHEMA = """
CREATE TABLE notes (order_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, event_id TEXT NOT NULL
);
"""
MIGRATIONS = [SCHEMA, OUTBOX_MIGRATION, CONSUMER_MIGRATION]
PLACED = "order.OrderPlaced"


def open_db(target: Path | str) -> Database:
    """The test service's database: a SQLite file, or a PostgreSQL URL."""
    return Database(target, MIGRATIONS)


def placed(order_id: str) -> events_pb2.OrderPlaced:
    return events_pb2.OrderPlaced(order=order_pb2.Order(order_id=order_id, user_id="usr-1"))


def record_effect(conn: Connection, envelope: common_pb2.EventEnvelope) -> None:
    """A consumer's effect: one row per application (a doubled effect shows as two)."""
    order = unpack(envelope, events_pb2.OrderPlaced).order
    conn.execute(
        "INSERT INTO effects (order_id, event_id) VALUES (?, ?)", (order.order_id, envelope.id)
    )


def effects(db: Database) -> list[str]:
    rows = db.read().execute("SELECT order_id FROM effects ORDER BY seq").fetchall()
    return [row[0] for row in rows]


async def stream_messages(nc: NatsClient, stream: str) -> list[RawStreamMsg]:
    """Every message of ``stream`` in order (subject, data, headers, seq)."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return []
    return [
        await js.get_msg(stream, seq)
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]


async def order_ids_in(nc: NatsClient, stream: str = "ORDERS") -> list[str]:
    ids = []
    for msg in await stream_messages(nc, stream):
        envelope = decode_envelope(msg.data or b"")
        ids.append(unpack(envelope, events_pb2.OrderPlaced).order.order_id)
    return ids


async def consumer_state(nc: NatsClient, stream: str, name: str) -> tuple[int, int]:
    """(num_pending, num_ack_pending) of a durable consumer."""
    info = await nc.jetstream().consumer_info(stream, name)
    return int(info.num_pending or 0), int(info.num_ack_pending or 0)
