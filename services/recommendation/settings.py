"""Recommendation's own settings, read once from the environment at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import read_settings, setting


@dataclass(frozen=True)
class RecommendationSettings:
    # Budget for reading the whole order history (all its pages together).
    order_timeout_seconds: float = setting(
        "MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS", 0.4, in_ms=True
    )
    # Budget for one catalog lookup (GetProducts in parallel, or a full ListProducts scan).
    catalog_timeout_seconds: float = setting(
        "MESHMART_RECOMMENDATION_CATALOG_TIMEOUT_MS", 0.3, in_ms=True
    )
    # Budget for looking the user up (GetUser, side by side with the history read).
    user_timeout_seconds: float = setting(
        "MESHMART_RECOMMENDATION_USER_TIMEOUT_MS", 0.3, in_ms=True
    )
    # How long a built co-occurrence model is reused (see Recommender for why).
    model_ttl_seconds: float = setting("MESHMART_RECOMMENDATION_MODEL_TTL_S", 30.0, minimum=0.0)
    # How many of the newest orders the model learns from.
    history_orders: int = setting("MESHMART_RECOMMENDATION_HISTORY_ORDERS", 500, minimum=1)
    # Upper bound on products read when ranking the catalog by popularity.
    catalog_products: int = setting("MESHMART_RECOMMENDATION_CATALOG_PRODUCTS", 1000, minimum=1)


def load_settings(env: Mapping[str, str] | None = None) -> RecommendationSettings:
    return read_settings(RecommendationSettings, env)
