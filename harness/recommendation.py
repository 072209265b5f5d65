"""The two implementations of RecommendationService (Python v1, Go v2), each run as the
real process the mesh runs (its own entry point, configured by the same MESHMART_*
variables): the contract suite (tests/contract) holds them to one behaviour, and
bench/recommendation_v1_v2.py measures them side by side.

A process's stderr is read by a task (``ServerProcess.read_stderr``) so a chatty process
can never block on a full pipe; readiness is its own "server.started" log record (both
implementations write v1's JSON log records), never a poll loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness import ROOT

GO_BINARY = ROOT / ".venv" / "bin" / "recommendation-go"


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


async def start(
    implementation: Implementation, env: Mapping[str, str], *, cpus: str | None = None
) -> ServerProcess:
    """Start the implementation with exactly the MESHMART_* variables in ``env`` (pinned
    to ``cpus`` with taskset -c when given). The caller reads its stderr
    (``read_stderr``) and stops it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESHMART_")}
    pin = ("taskset", "-c", cpus) if cpus is not None else ()
    process = await asyncio.create_subprocess_exec(
        *pin,
        *implementation.command,
        cwd=ROOT,
        env={**base, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return ServerProcess(implementation, process)
