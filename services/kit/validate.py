"""Explicit request validators; each raises InvalidArgument naming the field.

protovalidate is not available here, so servicers validate with these small functions at
the top of each RPC. Validators that normalise return the value to use.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sized
from typing import TypeVar

from services.kit.errors import InvalidArgument

T = TypeVar("T")
N = TypeVar("N", int, float)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

# Deliberately simple: one "@", no spaces, a dot in the domain. Deliverability is the
# mail server's question, not ours.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def require(condition: bool, field: str, description: str) -> None:
    """The general case: raise InvalidArgument(field, description) unless ``condition``."""
    if not condition:
        raise InvalidArgument(field, description)


def non_empty(value: str, field: str) -> str:
    """A required string; returns it stripped of surrounding whitespace."""
    stripped = value.strip()
    if not stripped:
        raise InvalidArgument(field, "must not be empty")
    return stripped


def non_empty_list(values: Collection[T], field: str) -> Collection[T]:
    if len(values) == 0:
        raise InvalidArgument(field, "must contain at least one item")
    return values


def max_length(value: Sized, limit: int, field: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(field, f"must be at most {limit} long, got {len(value)}")


def in_range(value: N, lo: N, hi: N, field: str) -> N:
    """``lo <= value <= hi`` (inclusive both ends)."""
    if not lo <= value <= hi:
        raise InvalidArgument(field, f"must be between {lo} and {hi}, got {value}")
    return value


def positive(value: N, field: str) -> N:
    if not value > 0:
        raise InvalidArgument(field, f"must be greater than 0, got {value}")
    return value


def non_negative(value: N, field: str) -> N:
    if not value >= 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    return value


def one_of(value: T, allowed: Collection[T], field: str) -> T:
    if value not in allowed:
        choices = ", ".join(sorted(str(a) for a in allowed))
        raise InvalidArgument(field, f"must be one of {choices}, got {value!r}")
    return value


def email(value: str, field: str) -> str:
    """A plausible e-mail address; returns it stripped and lower-cased."""
    normalised = value.strip().lower()
    if not normalised:
        raise InvalidArgument(field, "must not be empty")
    if len(normalised) > 254 or not _EMAIL.match(normalised):
        raise InvalidArgument(field, "must be an e-mail address like name@example.com")
    return normalised


def identifier(value: str, field: str, *, limit: int = 128) -> str:
    """An opaque id (product_id, order_id, idempotency key): no spaces, bounded length."""
    if not value:
        raise InvalidArgument(field, "must not be empty")
    if len(value) > limit or not _ID.match(value):
        raise InvalidArgument(
            field, f"must be 1-{limit} characters of letters, digits and _ . : - "
        )
    return value


def currency(value: str, field: str) -> str:
    """An ISO 4217 code such as "EUR"."""
    if not _CURRENCY.match(value):
        raise InvalidArgument(field, f"must be a 3-letter ISO 4217 code like EUR, got {value!r}")
    return value


def page_size(
    value: int,
    field: str = "page_size",
    *,
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
) -> int:
    """The page size to use: 0 (unset in proto3) means ``default``; larger than
    ``maximum`` is clamped, as AIP-158 recommends; negative is an error."""
    if value < 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    if value == 0:
        return default
    return min(value, maximum)
