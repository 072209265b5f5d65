"""How a service talks to NATS (MESHMART_NATS_URL and MESHMART_EVENTS_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import env_float, env_int, env_str


@dataclass(frozen=True)
class EventSettings:
    """How a service talks to NATS; ``nats_url`` None switches events off."""

    nats_url: str | None = None
    # Deliveries of one message before it goes to the dead-letter stream.
    max_deliveries: int = 5
    # Redelivery after this long without an ack (consumer crashed mid-message).
    ack_wait_seconds: float = 30.0
    # First back-off of a failed message (doubles per delivery, capped at 30s).
    retry_delay_seconds: float = 1.0
    publish_timeout_seconds: float = 2.0


def load_event_settings(env: Mapping[str, str] | None = None) -> EventSettings:
    url = env_str("MESHMART_NATS_URL", "", env=env)
    return EventSettings(
        nats_url=url or None,
        max_deliveries=env_int(
            "MESHMART_EVENTS_MAX_DELIVERIES", 5, minimum=1, maximum=100, env=env
        ),
        ack_wait_seconds=env_float(
            "MESHMART_EVENTS_ACK_WAIT_SECONDS", 30.0, minimum=0.5, maximum=3600.0, env=env
        ),
        retry_delay_seconds=env_float(
            "MESHMART_EVENTS_RETRY_DELAY_SECONDS", 1.0, minimum=0.0, maximum=60.0, env=env
        ),
        publish_timeout_seconds=env_float(
            "MESHMART_EVENTS_PUBLISH_TIMEOUT_SECONDS", 2.0, minimum=0.05, maximum=60.0, env=env
        ),
    )
