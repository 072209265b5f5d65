"""`python -m tests.events.crashing_relay DB NATS_URL K`: an OutboxRelay process that
dies (os._exit, no cleanup, like SIGKILL) right after it took JetStream's ack of its K-th
publish and before it marks anything sent: the worst moment for a relay to crash. (More
of its window may already be stored: those were sent, their acks not yet taken.)"""

from __future__ import annotations

import asyncio
import os
import sys

from services.kit.events import EventBus
from services.kit.outbox import OutboxRelay, PendingEvent
from tests.events.helpers import open_db


class CrashingRelay(OutboxRelay):
    def __init__(self, *args: object, crash_after: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._crash_after = crash_after

    def _acknowledged(self, row: PendingEvent, duplicate: bool) -> None:
        super()._acknowledged(row, duplicate)
        if self.stats.published >= self._crash_after:
            os._exit(9)


async def main(db_path: str, url: str, crash_after: int) -> None:
    db = open_db(db_path)  # a SQLite file or a PostgreSQL URL
    bus = EventBus(url, name="crashing-relay")
    await bus.start()
    # Small windows, so it dies with part of the outbox not even sent yet.
    relay = CrashingRelay(
        db, bus, holder="crashing-relay", crash_after=crash_after, batch_size=10, window=4
    )
    await relay.publish_pending()
    raise SystemExit("the relay published everything without crashing")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
