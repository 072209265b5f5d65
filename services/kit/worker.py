"""Background workers: what a service starts once SERVING and stops on shutdown (the
outbox relay, the event consumers, inventory's expiry sweeper)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import Protocol


class Worker(Protocol):
    """What ServiceEvents (and a service's hooks) start and stop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# How long a cancelled task has to end before it is cancelled again.
RECANCEL_SECONDS = 1.0


async def cancelled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again each
    RECANCEL_SECONDS while it runs on: a cancellation can be lost below our code (on
    Python 3.11 ``asyncio.wait_for`` returns a result that arrived with the cancel;
    nats-py turns a cancelled ``next_msg`` into ConnectionClosedError once its connection
    is closed, which a consumer's retry loop takes for a broker outage), and the task
    would then run on while its stop waited forever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
    with contextlib.suppress(asyncio.CancelledError):
        await task


class BackgroundWorker(ABC):
    """One task running ``_run`` until stopped: ``start`` creates it (a second start does
    nothing), ``stop`` cancels it, waits for it to end, then runs ``_stopped``."""

    def __init__(self, task_name: str) -> None:
        self._task_name = task_name
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancelled(task)
            await self._stopped()

    @abstractmethod
    async def _run(self) -> None:
        """The task's body; it runs until cancelled."""

    async def _stopped(self) -> None:
        """Runs once the task has ended (the relay gives up its lease); nothing here."""
        return None
