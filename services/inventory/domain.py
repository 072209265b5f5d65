"""Reservations and their life cycle, as plain values and rules.

A reservation holds stock for one order. It starts RESERVED and ends in exactly one of
COMMITTED (the order was confirmed: the stock is sold), RELEASED (the order gave it back)
or EXPIRED (nobody decided before its deadline: the stock went back by itself). The
rules below decide what Commit and Release do in each state; the store applies them
inside one write transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from google.rpc import error_details_pb2

from services.kit.errors import FailedPrecondition

DEFAULT_TTL_SECONDS = 300


class ReservationState(enum.StrEnum):
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Line:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Reservation:
    order_id: str
    state: ReservationState
    expires_at_ms: int  # unix time in milliseconds
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class StockLevel:
    product_id: str
    available: int
    reserved: int


@dataclass(frozen=True)
class Shortage:
    product_id: str
    requested: int
    available: int


def commit_needs_work(reservation: Reservation) -> bool:
    """True if Commit must sell the stock; False if it is already committed (a repeat).

    A RELEASED or EXPIRED reservation's stock is back on the shelf and may be held by
    another order by now, so committing it is refused rather than re-reserved.
    """
    if reservation.state is ReservationState.RESERVED:
        return True
    if reservation.state is ReservationState.COMMITTED:
        return False
    raise FailedPrecondition(
        f"reservation for order {reservation.order_id} is {reservation.state}; "
        "only a RESERVED reservation can be committed"
    )


def release_needs_work(reservation: Reservation) -> bool:
    """True if Release must return the stock; False if it already went back (a repeat,
    or the reservation expired). A COMMITTED reservation's stock is sold: refused."""
    if reservation.state is ReservationState.RESERVED:
        return True
    if reservation.state in (ReservationState.RELEASED, ReservationState.EXPIRED):
        return False
    raise FailedPrecondition(
        f"reservation for order {reservation.order_id} is COMMITTED; sold stock cannot be released"
    )


def out_of_stock(shortages: Sequence[Shortage]) -> FailedPrecondition:
    """The error for a Reserve that cannot be met: names every short product, and
    carries a google.rpc.PreconditionFailure so callers need not parse the message."""
    described = ", ".join(
        f"{s.product_id} (requested {s.requested}, available {s.available})" for s in shortages
    )
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type="STOCK",
                subject=s.product_id,
                description=f"requested {s.requested}, available {s.available}",
            )
            for s in shortages
        ]
    )
    return FailedPrecondition(f"not enough stock for {described}", details=[failure])
