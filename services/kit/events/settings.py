"""How a service talks to NATS (MESHMART_NATS_URL and MESHMART_EVENTS_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import env_str, read_settings, setting


@dataclass(frozen=True)
class EventSettings:
    """How a service talks to NATS; ``nats_url`` None switches events off."""

    nats_url: str | None = None
    # Deliveries of one message before it goes to the dead-letter stream.
    max_deliveries: int = setting("MESHMART_EVENTS_MAX_DELIVERIES", 5, minimum=1, maximum=100)
    # Redelivery after this long without an ack (consumer crashed mid-message).
    ack_wait_seconds: float = setting(
        "MESHMART_EVENTS_ACK_WAIT_SECONDS", 30.0, minimum=0.5, maximum=3600.0
    )
    # First back-off of a failed message (doubles per delivery, capped at 30s).
    retry_delay_seconds: float = setting(
        "MESHMART_EVENTS_RETRY_DELAY_SECONDS", 1.0, minimum=0.0, maximum=60.0
    )
    publish_timeout_seconds: float = setting(
        "MESHMART_EVENTS_PUBLISH_TIMEOUT_SECONDS", 2.0, minimum=0.05, maximum=60.0
    )
    # Copies JetStream keeps of each stream: 1 on one NATS server, 3 on a three-node
    # cluster (a mesh on three hosts, tools/mesh/nats.py), so losing a node loses nothing.
    stream_replicas: int = setting("MESHMART_NATS_REPLICAS", 1, minimum=1, maximum=5)


def load_event_settings(env: Mapping[str, str] | None = None) -> EventSettings:
    url = env_str("MESHMART_NATS_URL", "", env=env)
    return read_settings(EventSettings, env, nats_url=url or None)
