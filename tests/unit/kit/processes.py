"""Run a kit-served process and follow its JSON log lines on stderr.

Readiness is the server's own "server.started" log line, not a poll loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


class ServerProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def wait_for(self, event: str, within: float = 20.0) -> dict[str, Any]:
        """The next log record with ``event``; fails with the log so far if it never comes."""
        assert self.process.stderr is not None
        try:
            async with asyncio.timeout(within):
                while True:
                    raw = await self.process.stderr.readline()
                    if not raw:
                        raise AssertionError(f"process exited before {event!r}:\n{self.log()}")
                    line = raw.decode().rstrip("\n")
                    self.lines.append(line)
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # grpc's C core may write plain lines
                    if record.get("event") == event:
                        return dict(record)
        except TimeoutError:
            raise AssertionError(f"no {event!r} within {within}s:\n{self.log()}") from None

    async def finish(self, within: float = 30.0) -> int:
        """Wait for exit (collecting the rest of stderr) and return the exit code."""
        assert self.process.stderr is not None
        async with asyncio.timeout(within):
            rest = await self.process.stderr.read()
            self.lines.extend(rest.decode().splitlines())
            return await self.process.wait()

    def log(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)


async def start_module(module: str, env: Mapping[str, str]) -> ServerProcess:
    """``python -m module`` from the repo root with exactly the MESHMART_* in ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESHMART_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=ROOT,
        env={**base, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return ServerProcess(process)
