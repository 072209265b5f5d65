"""A background worker stops even when its body loses a cancellation, as libraries below
it can (services/kit/worker.py ``cancelled``)."""

from __future__ import annotations

import asyncio

import pytest

from services.kit import worker
from services.kit.worker import BackgroundWorker


class LosesOneCancel(BackgroundWorker):
    """Takes the first cancellation for an error and goes on polling, as a consumer whose
    fetch nats-py turned into ConnectionClosedError does."""

    def __init__(self) -> None:
        super().__init__("loses-one-cancel")
        self.lost = 0
        self.stopped = False

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.lost:
                    raise
                self.lost += 1  # swallowed: the loop polls on

    async def _stopped(self) -> None:
        self.stopped = True


async def test_a_worker_that_loses_a_cancellation_still_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker, "RECANCEL_SECONDS", 0.05)
    body = LosesOneCancel()
    await body.start()
    await asyncio.sleep(0)  # the task is in its sleep
    await asyncio.wait_for(body.stop(), timeout=5)
    assert body.lost == 1
    assert body.stopped


async def test_stop_ends_a_worker_that_takes_its_cancellation_at_once() -> None:
    body = LosesOneCancel()
    body.lost = 1  # the next cancellation ends it
    await body.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(body.stop(), timeout=5)
    assert body.stopped
