"""Cart-only settings, read once at start next to the kit's ServiceConfig."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import ConfigError, env_float, env_str

CURRENCY_VARIABLE = "MESHMART_CART_CURRENCY"
CATALOG_TIMEOUT_VARIABLE = "MESHMART_CART_CATALOG_TIMEOUT_SECONDS"


@dataclass(frozen=True)
class CartSettings:
    # The shop's one currency: the currency of every line and of an empty cart's total.
    currency: str
    # Deadline of each GetProduct to catalog; an add waits at most this long for prices.
    catalog_timeout_seconds: float


def load_settings(env: Mapping[str, str] | None = None) -> CartSettings:
    currency = env_str(CURRENCY_VARIABLE, "EUR", env=env)
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ConfigError(
            f"{CURRENCY_VARIABLE} must be an ISO 4217 code like EUR, got {currency!r}"
        )
    return CartSettings(
        currency=currency,
        catalog_timeout_seconds=env_float(
            CATALOG_TIMEOUT_VARIABLE, 1.0, minimum=0.01, maximum=60.0, env=env
        ),
    )
