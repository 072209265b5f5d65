"""`python -m tests.events.crashing_consumer DB NATS_URL`: an EventConsumer process that
dies (os._exit, like SIGKILL) after committing its first event and before acking it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from nats.aio.msg import Msg

from services.kit.events import ORDERS, EventBus, EventConsumer, EventSettings
from tests.events.helpers import PLACED, open_db, record_effect


class CrashBeforeAck(EventConsumer):
    async def _ack(self, msg: Msg) -> None:
        os._exit(9)


async def main(db_path: str, url: str) -> None:
    db = open_db(Path(db_path))
    bus = EventBus(url, name="crashing-consumer")
    await bus.start()
    consumer = CrashBeforeAck(
        bus,
        db,
        name="ledger",
        stream=ORDERS,
        handlers={PLACED: record_effect},
        settings=EventSettings(ack_wait_seconds=1.0),
    )
    await consumer.start()
    await asyncio.sleep(60)
    raise SystemExit("no event arrived within 60s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
