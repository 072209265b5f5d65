"""A service-like entry point for the kit's process-level tests:
``python -m tests.unit.kit.echo_server`` behaves like ``python -m services.<name>``."""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.kit.config import ServiceConfig, env_float
from services.kit.logging import get_logger
from services.kit.server import Service, main
from tests.unit.kit.echo_service import SPEC

log = get_logger("kittest.main")


async def announce_start() -> None:
    log.info("hook.on_start")


async def announce_stop() -> None:
    log.info("hook.on_stop")


async def failing_stop() -> None:
    # Stands in for a deregistration that fails: shutdown must carry on regardless.
    raise ConnectionError("consul unreachable")


def build(config: ServiceConfig, stack: AsyncExitStack) -> Service:
    # A service-specific setting, read and validated the same way as the kit's own.
    grace = env_float("KITTEST_GRACE_SECONDS", 10.0, minimum=0.0)
    return Service(
        specs=[SPEC],
        on_start=[announce_start],
        on_stop=[failing_stop, announce_stop],
        grace_seconds=grace,
    )


if __name__ == "__main__":
    main("kittest", build)
