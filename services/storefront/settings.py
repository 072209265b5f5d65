"""Storefront's own settings: one deadline per dependency, read once at start."""

from __future__ import annotations

from services.kit.config import env_int
from services.storefront.dashboard import Timeouts


def _ms(name: str, default: int) -> float:
    return env_int(name, default, minimum=1, maximum=60_000) / 1000


def load_settings() -> Timeouts:
    # recommendation gets the most: it calls order and catalog itself (400 + 300 ms by
    # default; its user lookup, 300 ms, runs beside the order read). The catalog fallback
    # runs only after recommendation failed, so the dashboard's worst case is
    # recommendation + catalog = 1.1 s with these defaults.
    return Timeouts(
        user_seconds=_ms("MESHMART_STOREFRONT_USER_TIMEOUT_MS", 300),
        order_seconds=_ms("MESHMART_STOREFRONT_ORDER_TIMEOUT_MS", 500),
        payment_seconds=_ms("MESHMART_STOREFRONT_PAYMENT_TIMEOUT_MS", 500),
        recommendation_seconds=_ms("MESHMART_STOREFRONT_RECOMMENDATION_TIMEOUT_MS", 800),
        catalog_seconds=_ms("MESHMART_STOREFRONT_CATALOG_TIMEOUT_MS", 300),
    )
