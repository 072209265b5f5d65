"""A real nats-server (the one `make setup` builds) that tests can kill and restart.

Readiness is read from the server's own log ("Server is ready"), not polled; the store
directory survives a kill, so a restarted server has every stream and consumer back.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from harness import ROOT
from harness.host import free_port
from tools.logged_process import start_logged_process

NATS_SERVER = ROOT / ".venv" / "bin" / "nats-server"


class NatsServer:
    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self.monitor_port = free_port(host)
        self.store_dir = store_dir
        self.log_path = store_dir.parent / f"{store_dir.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        command = [
            str(NATS_SERVER),
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--http_port",
            str(self.monitor_port),
            "--server_name",
            "meshmart-test",
        ]
        # SIGKILL when we die: a test run killed by a timeout leaves no broker behind.
        process, ready = start_logged_process(
            command, log_path=self.log_path, ready_line=b"Server is ready",
            death_signal=signal.SIGKILL, name="nats-server",
        )
        self._process = process
        if not ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"nats-server not ready within {timeout}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL, as a crashed broker ends (JetStream recovers from its store)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL after 10s."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
