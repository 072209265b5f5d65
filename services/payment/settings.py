"""Payment-only settings, read once at start next to the kit's ServiceConfig."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import env_float, env_int
from services.kit.db import Synchronous

from .faults import MAX_DELAY_MS, Fault
from .store import SYNCHRONOUS

FAULT_RATIO_VARIABLE = "MESHMART_PAYMENT_FAULT_UNAVAILABLE_RATIO"
FAULT_DELAY_VARIABLE = "MESHMART_PAYMENT_FAULT_DELAY_MS"


@dataclass(frozen=True)
class PaymentSettings:
    # The fault the process starts with; PaymentAdminService.SetFault changes it at run time.
    initial_fault: Fault
    # Not read from the environment: a shop always commits charges FULL. A field only so
    # bench/durable_commits.py can run NORMAL beside it.
    synchronous: Synchronous = SYNCHRONOUS


def load_settings(env: Mapping[str, str] | None = None) -> PaymentSettings:
    return PaymentSettings(
        initial_fault=Fault(
            unavailable_ratio=env_float(
                FAULT_RATIO_VARIABLE, 0.0, minimum=0.0, maximum=1.0, env=env
            ),
            delay_ms=env_int(FAULT_DELAY_VARIABLE, 0, minimum=0, maximum=MAX_DELAY_MS, env=env),
        )
    )
