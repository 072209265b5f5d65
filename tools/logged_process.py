"""A server started as our child whose stderr goes to a log file, ready when it logs a
given line: what tools/postgres.py and harness/nats_server.py both start.

Readiness is read from the server's own log, not polled. The child is in a session of
its own (a Ctrl-C of ours is not its) and gets ``death_signal`` when the process that
started it dies (Linux prctl PR_SET_PDEATHSIG), so a killed run leaves no server behind.
"""

from __future__ import annotations

import ctypes
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(death_signal: int) -> Callable[[], None]:
    """What the child runs before exec (after it became ``user``): ask the kernel for
    ``death_signal`` when its parent dies."""
    def preexec() -> None:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, death_signal)
    return preexec


def start_logged_process(
    command: Sequence[str], *, log_path: Path, ready_line: bytes, death_signal: int,
    name: str, user: str | None = None, cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], threading.Event]:
    """Start ``command``; a thread appends its stderr to ``log_path`` and sets the event
    returned once a line holds ``ready_line``. The caller waits on it with its own timeout
    and stops the process its own way when it never comes."""
    log = log_path.open("ab")
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        user=user,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=die_with_parent(death_signal),
    )
    ready = threading.Event()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.write(line)
            log.flush()
            if ready_line in line:
                ready.set()
        log.close()

    threading.Thread(target=pump, name=f"{name}-log", daemon=True).start()
    return process, ready
