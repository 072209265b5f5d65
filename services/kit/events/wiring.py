"""ServiceEvents: what one service process runs for events (the bus and its workers),
started by serve() once SERVING (``Service.events``) and closed after serve() returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from services.kit.config import ServiceConfig
from services.kit.events.bus import EventBus
from services.kit.events.settings import EventSettings, load_event_settings
from services.kit.logging import get_logger
from services.kit.worker import Worker

log = get_logger("meshmart.events")


class ServiceEvents:
    """Everything event-related one service process runs: the bus and its workers
    (outbox relay, consumers). serve() starts it once SERVING (``Service.events``); it is
    closed after serve() returns (so events committed while draining are still published
    next run).
    """

    def __init__(self, bus: EventBus | None, workers: Sequence[Worker] = ()) -> None:
        self.bus = bus
        self.workers = list(workers)

    @classmethod
    def from_env(
        cls,
        config: ServiceConfig,
        build: Callable[[EventBus, EventSettings], Sequence[Worker]],
        env: Mapping[str, str] | None = None,
        settings: EventSettings | None = None,
    ) -> ServiceEvents:
        """Events of ``config``'s service; off (and saying so) without MESHMART_NATS_URL.

        ``build`` creates the workers once the bus exists (not called when off).
        ``settings``: these instead of the environment's (the in-process tests' shop).
        """
        settings = settings or load_event_settings(env)
        if settings.nats_url is None:
            return cls(None)
        bus = EventBus(
            settings.nats_url,
            name=config.instance_id,
            publish_timeout_seconds=settings.publish_timeout_seconds,
            stream_replicas=settings.stream_replicas,
        )
        return cls(bus, build(bus, settings))

    @property
    def enabled(self) -> bool:
        return self.bus is not None

    async def start(self) -> None:
        if self.bus is None:
            log.warning(
                "events.disabled",
                reason="MESHMART_NATS_URL is not set",
                effect="events are kept in the outbox (published by a later run with NATS);"
                " nothing is consumed",
            )
            return
        await self.bus.start()
        for worker in self.workers:
            await worker.start()

    async def close(self) -> None:
        for worker in reversed(self.workers):
            await worker.stop()
        if self.bus is not None:
            await self.bus.close()
