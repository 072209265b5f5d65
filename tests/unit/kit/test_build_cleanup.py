"""A build that fails halfway closes what it had already opened: each resource goes onto
the stack serve() (and running_service) own the moment it is opened."""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.kit.config import ConfigError, ServiceConfig
from services.kit.db import Database
from services.kit.server import Service, opened, serve
from services.kit.testing import config_for_tests, running_service
from services.order import app as order_app


class Opened:
    """Records what a real constructor returned, to look at it once the build failed."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self.made: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        made = self._make(*args, **kwargs)
        self.made.append(made)
        return made


def closed_database(db: Database) -> bool:
    try:
        db.read().execute("SELECT 1")
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return True
    return False


def closed_channel(channel: grpc.aio.Channel) -> bool:
    return channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN


async def test_running_service_closes_what_a_failing_build_opened(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def build(config: ServiceConfig, stack: AsyncExitStack) -> Service:
        seen["db"] = opened(stack, Database(tmp_path / "a.sqlite3", []))
        seen["channel"] = opened(stack, grpc.aio.insecure_channel("127.0.0.1:1"))
        raise RuntimeError("the third resource could not be opened")

    with pytest.raises(RuntimeError, match="third resource"):
        async with running_service(config_for_tests("broken", data_dir=tmp_path), build):
            pytest.fail("a failed build must not be served")

    assert closed_database(seen["db"])
    assert closed_channel(seen["channel"])


async def test_serve_closes_what_orders_build_opened_before_a_missing_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No MESHMART_UPSTREAM_PAYMENT: order's build has opened its database and the
    # channels to user, cart and inventory when connect() refuses the fourth.
    config = config_for_tests(
        "order",
        data_dir=tmp_path,
        upstreams={name: "127.0.0.1:1" for name in ("user", "cart", "inventory")},
    )
    databases = Opened(order_app.open_database)
    channels = Opened(order_app.connect)
    monkeypatch.setattr(order_app, "open_database", databases)
    monkeypatch.setattr(order_app, "connect", channels)

    with pytest.raises(ConfigError, match="MESHMART_UPSTREAM_PAYMENT"):
        await serve(config, order_app.build)

    [db] = databases.made
    assert closed_database(db)
    assert len(channels.made) == 3
    assert all(closed_channel(channel) for channel in channels.made)
