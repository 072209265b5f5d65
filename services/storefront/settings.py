"""Storefront's own settings: one deadline per dependency, read once at start."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from services.kit.config import env_ms
from services.storefront.dashboard import Timeouts


def load_settings(env: Mapping[str, str] | None = None) -> Timeouts:
    # recommendation gets the most: it calls order and catalog itself (400 + 300 ms by
    # default; its user lookup, 300 ms, runs beside the order read). The catalog fallback
    # runs only after recommendation failed, so the dashboard's worst case is
    # recommendation + catalog = 1.1 s with these defaults.
    ms = partial(env_ms, maximum=60_000, env=env)
    return Timeouts(
        user_seconds=ms("MESHMART_STOREFRONT_USER_TIMEOUT_MS", 300),
        order_seconds=ms("MESHMART_STOREFRONT_ORDER_TIMEOUT_MS", 500),
        payment_seconds=ms("MESHMART_STOREFRONT_PAYMENT_TIMEOUT_MS", 500),
        recommendation_seconds=ms("MESHMART_STOREFRONT_RECOMMENDATION_TIMEOUT_MS", 800),
        catalog_seconds=ms("MESHMART_STOREFRONT_CATALOG_TIMEOUT_MS", 300),
    )
