"""Order-only settings, read once at start next to the kit's ServiceConfig."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import read_settings, setting
from services.kit.db import Synchronous

from .store import SYNCHRONOUS

CALL_TIMEOUT_VARIABLE = "MESHMART_ORDER_CALL_TIMEOUT_SECONDS"
PAYMENT_TIMEOUT_VARIABLE = "MESHMART_ORDER_PAYMENT_TIMEOUT_SECONDS"
RESERVATION_TTL_VARIABLE = "MESHMART_ORDER_RESERVATION_TTL_SECONDS"
SWEEP_INTERVAL_VARIABLE = "MESHMART_ORDER_SWEEP_INTERVAL_SECONDS"


@dataclass(frozen=True)
class OrderSettings:
    # Deadline of each call to user, cart and inventory. Envoy's retries happen inside it.
    call_timeout_seconds: float = setting(
        CALL_TIMEOUT_VARIABLE, 2.0, minimum=0.05, maximum=60.0
    )
    # Deadline of each call to payment (Charge, Refund, the ListPayments walk of a lookup):
    # a card network is slower than a table lookup.
    payment_timeout_seconds: float = setting(
        PAYMENT_TIMEOUT_VARIABLE, 5.0, minimum=0.05, maximum=120.0
    )
    # How long inventory holds the stock if order never commits or releases it. It is the
    # backstop of compensation: even if every Release fails, the stock comes back.
    # Inventory accepts 1..3600 seconds.
    reservation_ttl_seconds: int = setting(RESERVATION_TTL_VARIABLE, 900, minimum=1, maximum=3600)
    # How often orders whose compensation could not finish (an upstream was down) are
    # retried while the process runs; startup always retries them once. 0 turns it off.
    sweep_interval_seconds: float = setting(SWEEP_INTERVAL_VARIABLE, 30.0, minimum=0.0)
    # Not read from the environment: a shop always commits orders FULL. A field only so
    # bench/durable_commits.py can run NORMAL beside it.
    synchronous: Synchronous = SYNCHRONOUS


def load_settings(env: Mapping[str, str] | None = None) -> OrderSettings:
    return read_settings(OrderSettings, env)
