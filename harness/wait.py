"""Waiting for a condition with a deadline, the one way tests, benchmarks and the chaos
scenarios wait.

A condition is a function that returns a bool, or an awaitable of one (a coroutine
function, or a lambda returning a coroutine). Sync conditions run on the event loop
unless ``in_thread``: a scenario that reads Consul or Envoy while a load driver runs on
the same loop checks them in a worker thread so the load keeps its schedule. Exceptions
listed in ``not_yet`` (say, a part of the mesh not answering yet) count as "not yet";
any other exception ends the wait. ``until_blocking`` is the same wait for code without
an event loop (a test driving Playwright's sync API).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Condition = Callable[[], bool | Awaitable[bool]]


class TimedOut(AssertionError):
    """A condition did not hold within its deadline (the message says which)."""


async def _holds(
    condition: Condition, in_thread: bool, not_yet: tuple[type[BaseException], ...]
) -> bool:
    try:
        if in_thread and not inspect.iscoroutinefunction(condition):
            value = await asyncio.to_thread(condition)
        else:
            value = condition()
        if inspect.isawaitable(value):
            value = await value
    except not_yet:
        return False
    return bool(value)


async def until(
    condition: Condition,
    within: float,
    what: str,
    *,
    step: float = 0.1,
    in_thread: bool = False,
    not_yet: tuple[type[BaseException], ...] = (),
) -> float:
    """Check ``condition`` every ``step`` seconds until it holds; returns the seconds it
    took. Raises TimedOut naming ``what`` after ``within`` seconds."""
    started = time.monotonic()
    while True:
        if await _holds(condition, in_thread, not_yet):
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise TimedOut(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(step)


def until_blocking(
    condition: Callable[[], bool],
    within: float,
    what: str,
    *,
    step: float = 0.1,
    not_yet: tuple[type[BaseException], ...] = (),
) -> float:
    """``until`` for a blocking ``condition`` in code that has no event loop: checked in
    this thread every ``step`` seconds; returns the seconds it took, raises TimedOut
    naming ``what`` after ``within`` seconds."""
    started = time.monotonic()
    while True:
        try:
            held = bool(condition())
        except not_yet:
            held = False
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise TimedOut(f"timed out after {within:g}s waiting for {what}")
        time.sleep(step)


async def first_seen(
    condition: Condition,
    done: asyncio.Event,
    *,
    step: float = 0.05,
    in_thread: bool = False,
    not_yet: tuple[type[BaseException], ...] = (),
) -> float | None:
    """Seconds until ``condition`` first held, or None when ``done`` was set before it did:
    for a transient state (a killed instance that supervisord replaces may never show as
    critical) that a caller reports when it happens but must not wait for."""
    started = time.monotonic()
    while not done.is_set():
        if await _holds(condition, in_thread, not_yet):
            return time.monotonic() - started
        await asyncio.sleep(step)
    return None
