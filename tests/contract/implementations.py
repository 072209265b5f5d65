"""The implementations of RecommendationService the contract suite holds to one behaviour,
each run as the real process the mesh runs (its own entry point, configured by the same
MESHMART_* variables), against upstreams the test chooses.

    async with running(V2, order=..., catalog=..., user=...) as server:
        reply = await server.stub.Recommend(request, timeout=10)

Readiness is the process's own "server.started" log line (both implementations write v1's
JSON log records), never a poll loop. A reader task keeps draining stderr so a chatty
process can never block on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from meshmart.recommendation.v1 import recommendation_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
GO_BINARY = ROOT / ".venv" / "bin" / "recommendation-go"
# No model caching: each Recommend reads the history afresh, so a test sees the orders it
# just placed. Generous upstream budgets: the machine is shared.
TEST_SETTINGS = {
    "MESHMART_RECOMMENDATION_MODEL_TTL_S": "0",
    "MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS": "1000",
    "MESHMART_RECOMMENDATION_CATALOG_TIMEOUT_MS": "3000",
    "MESHMART_RECOMMENDATION_USER_TIMEOUT_MS": "1000",
    "MESHMART_DRAIN_SECONDS": "0",
}


@dataclass(frozen=True)
class Implementation:
    version: str  # the release label (MESHMART_SERVICE_VERSION, Consul meta.version)
    language: str
    command: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.version}-{self.language}"


V1 = Implementation("v1", "python", (sys.executable, "-m", "services.recommendation"))
V2 = Implementation("v2", "go", (str(GO_BINARY),))
IMPLEMENTATIONS = (V1, V2)


def build_go_binary() -> None:
    """Build (or find up to date) the Go binary from the current sources, the way `make
    setup` does: the suite always tests the code in the tree."""
    result = subprocess.run(
        [str(ROOT / "tools" / "build-go-services.sh"), "recommendation-go"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building recommendation-go failed:\n{result.stdout}{result.stderr}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    implementation: Implementation
    process: asyncio.subprocess.Process
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _eof: bool = False

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        while True:
            raw = await self.process.stderr.readline()
            async with self._changed:
                if not raw:
                    self._eof = True
                else:
                    line = raw.decode(errors="replace").rstrip("\n")
                    self.lines.append(line)
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                        if isinstance(record, dict):
                            self.records.append(record)
                self._changed.notify_all()
            if not raw:
                return

    async def wait_for(self, event: str, within: float = 30.0) -> dict[str, Any]:
        """The first log record with ``event``; fails with the log if it never comes."""

        def found() -> dict[str, Any] | None:
            return next((r for r in self.records if r.get("event") == event), None)

        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: found() is not None or self._eof)
        except TimeoutError:
            raise AssertionError(f"{self.implementation.name}: no {event!r} within {within}s:\n"
                                 f"{self.log()}") from None
        record = found()
        if record is None:
            name = self.implementation.name
            raise AssertionError(f"{name} exited before {event!r}:\n{self.log()}")
        return record

    async def exit_code(self, within: float = 30.0) -> int:
        async with asyncio.timeout(within):
            return await self.process.wait()

    def log(self) -> str:
        return "\n".join(self.lines)


async def start(implementation: Implementation, env: Mapping[str, str]) -> ServerProcess:
    """Start the implementation with exactly the MESHMART_* variables in ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESHMART_")}
    process = await asyncio.create_subprocess_exec(
        *implementation.command,
        cwd=ROOT,
        env={**base, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return ServerProcess(implementation, process)


@dataclass
class Running:
    server: ServerProcess
    target: str
    channel: grpc.aio.Channel
    stub: recommendation_pb2_grpc.RecommendationServiceStub


@contextlib.asynccontextmanager
async def running(
    implementation: Implementation,
    *,
    order: str,
    catalog: str,
    user: str,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Running]:
    """The implementation serving on a free port with the given upstream targets; stopped
    with SIGTERM (and required to exit 0) at the end."""
    port = free_port()
    server = await start(
        implementation,
        {
            "MESHMART_PORT": str(port),
            "MESHMART_UPSTREAM_ORDER": order,
            "MESHMART_UPSTREAM_CATALOG": catalog,
            "MESHMART_UPSTREAM_USER": user,
            "MESHMART_SERVICE_VERSION": implementation.version,
            # INFO: readiness is the "server.started" record.
            "MESHMART_LOG_LEVEL": "INFO",
            **TEST_SETTINGS,
            **(env or {}),
        },
    )
    reader = asyncio.create_task(server.read_stderr())
    try:
        await server.wait_for("server.started")
        target = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(target) as channel:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            yield Running(server, target, channel, stub)
        # One SIGTERM only: a test may have sent it already, and a second one reaching a
        # process that has stopped serving (its handlers gone) would kill it.
        signalled = any(r.get("event") == "server.signal" for r in server.records)
        if server.process.returncode is None and not signalled:
            server.process.send_signal(signal.SIGTERM)
        code = await server.exit_code()
        assert code == 0, f"{implementation.name} exited {code} after SIGTERM:\n{server.log()}"
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
        await reader
