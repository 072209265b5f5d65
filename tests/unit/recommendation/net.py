"""Two ways for an upstream to be broken, at the network level."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


def closed_port_target() -> str:
    """An address nothing listens on: calls to it fail with UNAVAILABLE at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """An address that accepts connections and never answers: a hung process. A call to it
    ends only at its deadline (DEADLINE_EXCEEDED)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
