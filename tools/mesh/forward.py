"""A port forward into a pod, as `kubectl port-forward` is: the host-side end of a
connection is accepted on a listening socket made in the host's network namespace, and
the other end is dialled in the pod's, to a port on the pod's own loopback.

``PodNetwork.port_forward`` (tools/mesh/pods.py) makes the listening socket on the host,
then runs this file under `ip netns exec <pod>` with that socket passed on as a file
descriptor: a socket stays in the namespace it was made in, so this one process accepts
on the host and dials in the pod. It copies bytes both ways (a gRPC channel's HTTP/2
connection, unchanged), one pair of connections per accepted one.

It exits when its stdin closes (the harness that started it has gone) or on SIGTERM.
Standard library only: run by path, before any project import could be set up.

    python tools/mesh/forward.py <listening fd> <port on the pod's loopback>
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading

CHUNK = 65536


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF, then half-close ``writer``."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def serve(listening_fd: int, port: int) -> None:
    async def forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            pod_r, pod_w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_w.transport.abort()  # the client sees a reset, as with nothing there
            return
        try:
            await asyncio.gather(pipe(client_r, pod_w), pipe(pod_r, client_w))
        finally:
            for w in (pod_w, client_w):
                w.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await w.wait_closed()

    listener = socket.socket(fileno=listening_fd)
    server = await asyncio.start_server(forward, sock=listener)
    async with server:
        await server.serve_forever()


def main() -> None:
    listening_fd, port = int(sys.argv[1]), int(sys.argv[2])
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(serve(listening_fd, port))


def exit_when_stdin_closes() -> None:
    """Ends with whoever started it: its end of our stdin closes when it exits."""
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    main()
