"""A real nats-server (the one `make setup` builds) that tests can kill and restart.

Readiness is read from the server's own log ("Server is ready"), not polled; the store
directory survives a kill, so a restarted server has every stream and consumer back.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from pathlib import Path

from harness import ROOT
from harness.host import free_port

NATS_SERVER = ROOT / ".venv" / "bin" / "nats-server"


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the process that started it dies, so a
    test run killed by a timeout leaves no broker behind (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


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
        log = self.log_path.open("ab")
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._process = process
        ready = threading.Event()

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                log.write(line)
                log.flush()
                if b"Server is ready" in line:
                    ready.set()
            log.close()

        threading.Thread(target=pump, name="nats-server-log", daemon=True).start()
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
