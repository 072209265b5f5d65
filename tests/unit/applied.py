"""A consumer's handlers applied to envelopes directly, each in its own transaction, as
the EventConsumer applies them (kit.events.apply_once), without a broker."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

from services.kit.db import Database
from services.kit.events import Handler, apply_once

_seq = itertools.count(1)


def apply_each(
    db: Database, consumer: str, handlers: Mapping[str, Handler], envelopes: tuple[Any, ...]
) -> list[bool]:
    """For each envelope: True when applied, False when ``consumer`` had applied it before."""
    results = []
    for envelope in envelopes:
        with db.transaction() as conn:
            results.append(
                apply_once(
                    conn,
                    consumer=consumer,
                    handlers=handlers,
                    envelope=envelope,
                    stream="TEST",
                    stream_seq=next(_seq),
                    now=time.time(),
                )
            )
    return results
