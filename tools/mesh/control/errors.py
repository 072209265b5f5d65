"""What the control commands share: their error and how they report progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO


class MeshError(Exception):
    """The mesh could not be brought up (the message says what and where to look)."""


Say = Callable[[str], None]


def writer(stream: TextIO) -> Say:
    """Progress lines to ``stream``, each flushed as it is written."""

    def say(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return say
