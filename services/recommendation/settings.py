"""Recommendation's own settings, read once from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.config import env_float, env_int


@dataclass(frozen=True)
class RecommendationSettings:
    # Budget for reading the whole order history (all its pages together).
    order_timeout_seconds: float = 0.4
    # Budget for one catalog lookup (GetProducts in parallel, or a full ListProducts scan).
    catalog_timeout_seconds: float = 0.3
    # Budget for looking the user up (GetUser, side by side with the history read).
    user_timeout_seconds: float = 0.3
    # How long a built co-occurrence model is reused (see Recommender for why).
    model_ttl_seconds: float = 30.0
    # How many of the newest orders the model learns from.
    history_orders: int = 500
    # Upper bound on products read when ranking the catalog by popularity.
    catalog_products: int = 1000


def _ms(name: str, default: int) -> float:
    return env_int(name, default, minimum=1) / 1000


def load_settings() -> RecommendationSettings:
    return RecommendationSettings(
        order_timeout_seconds=_ms("MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS", 400),
        catalog_timeout_seconds=_ms("MESHMART_RECOMMENDATION_CATALOG_TIMEOUT_MS", 300),
        user_timeout_seconds=_ms("MESHMART_RECOMMENDATION_USER_TIMEOUT_MS", 300),
        model_ttl_seconds=env_float("MESHMART_RECOMMENDATION_MODEL_TTL_S", 30.0, minimum=0.0),
        history_orders=env_int("MESHMART_RECOMMENDATION_HISTORY_ORDERS", 500, minimum=1),
        catalog_products=env_int("MESHMART_RECOMMENDATION_CATALOG_PRODUCTS", 1000, minimum=1),
    )
