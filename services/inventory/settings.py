"""Settings only the inventory service reads (besides the kit's ServiceConfig)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import read_settings, setting


@dataclass(frozen=True)
class InventorySettings:
    # How often the sweeper looks for expired reservations. RPCs expire lazily anyway,
    # so this only bounds how long abandoned stock looks reserved to an idle shop.
    sweep_interval_seconds: float = setting(
        "MESHMART_INVENTORY_SWEEP_SECONDS", 5.0, minimum=0.05, maximum=3600.0
    )


def load_settings(env: Mapping[str, str] | None = None) -> InventorySettings:
    return read_settings(InventorySettings, env)
