"""What blocks the event loop: MESHMART_LOOP_SLOW_CALLBACK_MS (off unless set above 0).

With a threshold set, ``watch(loop, ms)`` turns on two checks for ``loop``:

- asyncio's debug mode with ``slow_callback_duration``: every callback (one step of a
  coroutine) that took longer by the wall clock is logged by asyncio itself, as a warning
  of logger "asyncio" ("Executing <Task ...> took 0.031 seconds"). On a machine whose
  cores are busy with other processes, that also counts the time the thread was ready to
  run but waited for a core: it does not tell a blocked loop from a starved one.
- the kit's own ``loop.blocked`` warning: the time the loop's thread *slept* inside one
  callback (its wall time minus its CPU time minus its run-queue wait, from the thread's
  /proc schedstat), i.e. waited on a disk, a lock, a socket or another thread's GIL.
  That is what "blocks the loop" means, whatever the load. tests/mesh/test_event_loop.py
  fails on these lines.

Debug mode costs CPU (asyncio tracks where each coroutine was created); the kit's check
costs two reads of a /proc file per callback. Meant for the test mesh, not production.
The kit's check needs Linux and asyncio's own loop (uvloop's handles run in C).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from services.kit.logging import get_logger

SETTING = "MESHMART_LOOP_SLOW_CALLBACK_MS"

log = get_logger("meshmart.loop")

_SCHEDSTAT = "/proc/thread-self/schedstat"
_per_thread = threading.local()
_threshold_ns = [0]


def _schedstat() -> tuple[int, int]:
    """(CPU ns, run-queue wait ns) of the calling thread so far."""
    fd = getattr(_per_thread, "fd", None)
    if fd is None:
        # /proc/thread-self names the thread that opens it: one descriptor per thread.
        fd = _per_thread.fd = os.open(_SCHEDSTAT, os.O_RDONLY)
    cpu, waited, _ = os.pread(fd, 128, 0).split()
    return int(cpu), int(waited)


_original_run = asyncio.events.Handle._run


def _timed_run(handle: Any) -> None:
    cpu_before, waited_before = _schedstat()
    started = time.monotonic_ns()
    try:
        _original_run(handle)
    finally:
        wall = time.monotonic_ns() - started
        if wall >= _threshold_ns[0]:
            cpu_after, waited_after = _schedstat()
            cpu, waited = cpu_after - cpu_before, waited_after - waited_before
            blocked = wall - cpu - waited
            if blocked >= _threshold_ns[0]:
                log.warning(
                    "loop.blocked",
                    callback=repr(handle),
                    blocked_ms=round(blocked / 1e6, 1),
                    wall_ms=round(wall / 1e6, 1),
                    cpu_ms=round(cpu / 1e6, 1),
                    runqueue_ms=round(waited / 1e6, 1),
                )


def watch(loop: asyncio.AbstractEventLoop, threshold_ms: int) -> None:
    """Both checks on ``loop`` for callbacks over ``threshold_ms`` (see the module doc)."""
    loop.set_debug(True)
    loop.slow_callback_duration = threshold_ms / 1000
    if not os.path.exists(_SCHEDSTAT):
        log.warning("loop.watch_unavailable", reason=f"no {_SCHEDSTAT} on this system")
        return
    _threshold_ns[0] = threshold_ms * 1_000_000
    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
