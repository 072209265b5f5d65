"""A real nats-server for the event tests: one per session (free ports, a temp store),
always stopped at the end; every test starts from empty streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client as NatsClient

from harness.nats_server import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats") / "store")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nats_url(nats_server: NatsServer) -> AsyncIterator[str]:
    """The server's URL, with no stream left from an earlier test (and the server
    running again if an earlier test killed it)."""
    nats_server.start()
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            await js.delete_stream(info.config.name)
    finally:
        await nc.close()
    yield nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    """A plain client for a test to look at streams and consumers."""
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()
