"""harness.wait.until_blocking: the wait of a test without an event loop."""

from __future__ import annotations

import time

import pytest

from harness.wait import TimedOut, until_blocking


def test_until_blocking_returns_once_the_condition_holds() -> None:
    calls = []

    def third_time() -> bool:
        calls.append(time.monotonic())
        return len(calls) == 3

    took = until_blocking(third_time, 5, "the third call", step=0.01)
    assert len(calls) == 3
    assert 0 <= took < 5


def test_until_blocking_counts_a_not_yet_exception_as_not_holding() -> None:
    calls = []

    def answers_on_the_second_call() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("not up yet")
        return True

    until_blocking(answers_on_the_second_call, 5, "an answer", step=0.01,
                   not_yet=(ConnectionError,))
    assert len(calls) == 2


def test_until_blocking_raises_naming_what_it_waited_for() -> None:
    with pytest.raises(TimedOut, match="waiting for a thing that never holds"):
        until_blocking(lambda: False, 0.05, "a thing that never holds", step=0.01)


def test_until_blocking_passes_on_any_other_exception() -> None:
    def broken() -> bool:
        raise KeyError("broken")

    with pytest.raises(KeyError):
        until_blocking(broken, 5, "never", step=0.01, not_yet=(ConnectionError,))
