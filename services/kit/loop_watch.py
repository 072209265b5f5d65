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
import contextlib
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


def _busy_ns(fd: int) -> int:
    """CPU + run-queue wait (ns) of the thread whose schedstat ``fd`` reads."""
    cpu, waited, _ = os.pread(fd, 128, 0).split()
    return int(cpu) + int(waited)


class _Threads:
    """The schedstat descriptors of this thread and of the process's other threads."""

    def __init__(self) -> None:
        # /proc/thread-self names the thread that opens it.
        self.own = os.open(_SCHEDSTAT, os.O_RDONLY)
        self.own_tid = threading.get_native_id()
        self.others: dict[int, int] = {}
        self.listed = 0.0

    def other_fds(self, *, relist: bool = False) -> list[int]:
        now = time.monotonic()
        if relist or now - self.listed > 1.0:  # threads come and go: list them anew
            self.listed = now
            alive = {int(t) for t in os.listdir("/proc/self/task")} - {self.own_tid}
            for tid in set(self.others) - alive:
                os.close(self.others.pop(tid))
            for tid in alive - set(self.others):
                with contextlib.suppress(OSError):
                    self.others[tid] = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
        return list(self.others.values())


def _threads() -> _Threads:
    threads: _Threads | None = getattr(_per_thread, "threads", None)
    if threads is None:
        threads = _per_thread.threads = _Threads()
    return threads


def _read(fds: list[int]) -> list[int]:
    values = []
    for fd in fds:
        try:
            values.append(_busy_ns(fd))
        except (OSError, ValueError):  # the thread ended meanwhile
            values.append(-1)
    return values


_original_run = asyncio.events.Handle._run


def _timed_run(handle: Any) -> None:
    threads = _threads()
    fds = threads.other_fds()
    own_before, others_before = _schedstat(threads.own), _read(fds)
    started = time.monotonic_ns()
    try:
        _original_run(handle)
    finally:
        wall = time.monotonic_ns() - started
        if wall >= _threshold_ns[0]:
            cpu, waited = (a - b for a, b in zip(_schedstat(threads.own), own_before, strict=True))
            # The busiest other thread, running or waiting for a core meanwhile, may have
            # held the GIL the loop's thread waited for: that is not this callback's doing.
            # Threads listed since (started meanwhile, or in the last second) count with
            # all their time so far.
            new = [fd for fd in threads.other_fds(relist=True) if fd not in fds]
            deltas = [a - b for a, b in zip(_read(fds), others_before, strict=True) if b >= 0 <= a]
            other = max(deltas + [busy for busy in _read(new) if busy >= 0], default=0)
            blocked = wall - cpu - waited - min(other, wall)
            if blocked >= _threshold_ns[0]:
                log.warning(
                    "loop.blocked",
                    callback=_describe(handle),
                    blocked_ms=round(blocked / 1e6, 1),
                    wall_ms=round(wall / 1e6, 1),
                    cpu_ms=round(cpu / 1e6, 1),
                    runqueue_ms=round(waited / 1e6, 1),
                    other_thread_ms=round(other / 1e6, 1),
                )


def _describe(handle: Any) -> str:
    """The task a callback steps (and where it is now), as asyncio's own warning names it."""
    task = getattr(handle._callback, "__self__", None)
    return repr(task) if isinstance(task, asyncio.Task) else repr(handle)


def _schedstat(fd: int) -> tuple[int, int]:
    """(CPU ns, run-queue wait ns) of the thread ``fd`` reads the schedstat of."""
    cpu, waited, _ = os.pread(fd, 128, 0).split()
    return int(cpu), int(waited)


def watch(loop: asyncio.AbstractEventLoop, threshold_ms: int) -> None:
    """Both checks on ``loop`` for callbacks over ``threshold_ms`` (see the module doc)."""
    loop.set_debug(True)
    loop.slow_callback_duration = threshold_ms / 1000
    if not os.path.exists(_SCHEDSTAT):
        log.warning("loop.watch_unavailable", reason=f"no {_SCHEDSTAT} on this system")
        return
    _threshold_ns[0] = threshold_ms * 1_000_000
    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign, assignment]
