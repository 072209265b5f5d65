"""Consul's view of health, as the mesh tools read it: the worst status of a service's
checks, and a poll until a component's state is the one wanted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from tools.mesh.http import HTTPFailure, get_json

# Consul's check statuses, best first; anything unknown counts as critical.
STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2}
POLL_INTERVAL_SECONDS = 0.2


def worst(statuses: Iterable[str]) -> str:
    """The worst of ``statuses``, or "missing" when there is none."""
    return max(statuses, key=lambda s: STATUS_RANK.get(s, 2), default="missing")


def service_health(consul_url: str, service: str, token: str | None = None) -> str:
    """The worst status of every check of every instance of ``service``."""
    checks = get_json(f"{consul_url}/v1/health/checks/{service}", timeout=5, token=token)
    return worst(str(c["Status"]) for c in checks)


def wait_for_state(
    read: Callable[[], dict[str, str]],
    want: dict[str, str],
    deadline: float,
    failure: Callable[[dict[str, str]], Exception],
) -> None:
    """Poll ``read`` until it returns ``want``; past the deadline raise ``failure`` of the
    last state read. A failed HTTP call reads as {"consul": why}."""
    state: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            state = read()
        except HTTPFailure as error:
            state = {"consul": str(error)}
        if state == want:
            return
        time.sleep(POLL_INTERVAL_SECONDS)
    raise failure(state)
