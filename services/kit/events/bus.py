"""EventBus: one process's NATS connection and JetStream context, and the Backoff its
loops (and the consumers' and the outbox relay's) wait with while the broker is down."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck

from services.kit.events.streams import STREAMS, StreamSpec, ensure_streams
from services.kit.logging import get_logger
from services.kit.worker import cancelled

log = get_logger("meshmart.events")

# Header JetStream deduplicates on (within the stream's duplicate window).
MSG_ID_HEADER = "Nats-Msg-Id"
TYPE_HEADER = "Meshmart-Event-Type"


class Backoff:
    """Exponential back-off with jitter, for loops waiting on a broker that is down."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._cap)
        # +-20% so that every process of a restarted broker does not retry in lockstep.
        return delay * random.uniform(0.8, 1.2)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())


# --------------------------------------------------------------------------- connection


class EventBus:
    """One process's NATS connection and JetStream context.

    start() returns at once; the connection is made in the background (retrying forever
    while NATS is down), then the streams are ensured. Relays and consumers wait for it
    with ``await bus.jetstream()``. After a broker restart the client reconnects by
    itself and the streams are ensured again (the broker may have lost its store).
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        streams: Sequence[StreamSpec] = STREAMS,
        reconnect_wait_seconds: float = 0.5,
        publish_timeout_seconds: float = 2.0,
        stream_replicas: int = 1,
    ) -> None:
        self.url = url
        self.name = name
        self._streams = tuple(streams)
        self._reconnect_wait = reconnect_wait_seconds
        self.publish_timeout_seconds = publish_timeout_seconds
        self.stream_replicas = stream_replicas
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ensure_task: asyncio.Task[None] | None = None
        self._error_logged = False
        self.errors_seen = 0  # errors the NATS client reported, e.g. each failed connect

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._connect(), name=f"nats-connect:{self.name}")

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context, once connected and the streams exist."""
        await self._ready.wait()
        assert self._js is not None
        return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _connect(self) -> None:
        log.info("events.connecting", url=self.url)
        # max_reconnect_attempts=-1: the first connect, too, retries until NATS is up, so
        # a service starts (and fills its outbox) while the broker is still down.
        nc = await nats.connect(
            self.url,
            name=self.name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self._reconnect_wait,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._nc = nc
        self._js = nc.jetstream(timeout=self.publish_timeout_seconds)
        backoff = Backoff()
        while True:
            try:
                await ensure_streams(self._js, self._streams, self.stream_replicas)
                break
            except (TimeoutError, nats.errors.Error) as error:
                log.warning("events.ensure_streams_failed", error=repr(error))
                await backoff.sleep()
        self._error_logged = False
        log.info(
            "events.connected",
            url=self.url,
            streams=[s.name for s in self._streams],
        )
        self._ready.set()

    async def ensure_streams(self) -> None:
        """Ensure the streams again (after a broker restart, or a publish that found none)."""
        js = await self.jetstream()
        await ensure_streams(js, self._streams, self.stream_replicas)

    async def _on_error(self, error: Exception) -> None:
        # While NATS is down the client reports every failed attempt: say it once.
        self.errors_seen += 1
        if not self._error_logged:
            self._error_logged = True
            log.warning("events.nats_error", url=self.url, error=repr(error))

    async def _on_disconnected(self) -> None:
        log.warning("events.disconnected", url=self.url)

    async def _on_reconnected(self) -> None:
        self._error_logged = False
        log.info("events.reconnected", url=self.url)
        if self._ready.is_set() and (self._ensure_task is None or self._ensure_task.done()):
            self._ensure_task = asyncio.create_task(self._ensure_after_reconnect())

    async def _ensure_after_reconnect(self) -> None:
        try:
            await self.ensure_streams()
        except (TimeoutError, nats.errors.Error) as error:
            # Publishes that find no stream ensure it again themselves.
            log.warning("events.ensure_streams_failed", error=repr(error))

    async def publish(self, subject: str, data: bytes, *, msg_id: str, event_type: str) -> bool:
        """Publish with JetStream's ack; True when JetStream reports a duplicate.

        Raises (timeout, no stream, connection errors) when the ack did not come.
        """
        js = await self.jetstream()
        headers = {MSG_ID_HEADER: msg_id, TYPE_HEADER: event_type}
        try:
            ack = await js.publish(
                subject, data, timeout=self.publish_timeout_seconds, headers=headers
            )
        except nats.js.errors.NoStreamResponseError:
            await self.ensure_streams()
            ack = await js.publish(
                subject, data, timeout=self.publish_timeout_seconds, headers=headers
            )
        return bool(ack.duplicate)

    async def publish_pipelined(
        self, subject: str, data: bytes, *, msg_id: str, event_type: str
    ) -> asyncio.Future[PubAck]:
        """Send a publish now and return the future of its ack, so a caller can keep
        several in flight on this one connection, which NATS delivers to the stream in the
        order they were sent. Take each ack with ``acked``, the whole window's wait bounded
        by the caller (one timer per window rather than one per publish).
        """
        js = await self.jetstream()
        headers = {MSG_ID_HEADER: msg_id, TYPE_HEADER: event_type}
        return await js.publish_async(subject, data, headers=headers)

    async def acked(self, ack: asyncio.Future[PubAck]) -> bool:
        """The ack of a pipelined publish: True when JetStream reports a duplicate; raises
        the publish's error."""
        try:
            return bool((await ack).duplicate)
        except nats.js.errors.NoStreamResponseError:
            # The broker lost its store (or never had it): ensure the streams again; the
            # caller's retry then finds them.
            self._ensure_soon()
            raise

    def _ensure_soon(self) -> None:
        if self._ensure_task is None or self._ensure_task.done():
            self._ensure_task = asyncio.create_task(self._ensure_after_reconnect())

    async def stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        for task in (self._task, self._ensure_task):
            if task is not None and not task.done():
                await cancelled(task)
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._ready.clear()
