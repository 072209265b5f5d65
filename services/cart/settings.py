"""Cart-only settings, read once at start next to the kit's ServiceConfig."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import ConfigError, read_settings, setting

CURRENCY_VARIABLE = "MESHMART_CART_CURRENCY"
CATALOG_TIMEOUT_VARIABLE = "MESHMART_CART_CATALOG_TIMEOUT_SECONDS"


@dataclass(frozen=True)
class CartSettings:
    # The shop's one currency: the currency of every line and of an empty cart's total.
    currency: str = setting(CURRENCY_VARIABLE, "EUR")
    # Deadline of each GetProduct to catalog; an add waits at most this long for prices.
    catalog_timeout_seconds: float = setting(
        CATALOG_TIMEOUT_VARIABLE, 1.0, minimum=0.01, maximum=60.0
    )


def load_settings(env: Mapping[str, str] | None = None) -> CartSettings:
    settings = read_settings(CartSettings, env)
    if not re.fullmatch(r"[A-Z]{3}", settings.currency):
        raise ConfigError(
            f"{CURRENCY_VARIABLE} must be an ISO 4217 code like EUR, got {settings.currency!r}"
        )
    return settings
