"""A deliberately flaky payment service, for the resilience tests and the demo.

The knob has two parts: a probability of answering UNAVAILABLE and a delay added
to every call. Where they apply (the choice, written down once):

- Charge and Refund: delay, then UNAVAILABLE with the given probability. The fault
  fires before the request is validated or touches the database, so an injected
  UNAVAILABLE never leaves state behind and a retry (by the sidecar or the order
  saga) is always safe.
- ListPayments: delay only. It is a read, and the dashboard's partial-results
  behaviour is exercised by slowness; failures of reads are covered by killing
  an instance.
- PaymentAdminService itself: never faulty, so the knob can always be turned off.

The knob is per process: SetFault changes the instance that receives it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from services.kit.errors import InvalidArgument, Unavailable

MAX_DELAY_MS = 60_000


@dataclass(frozen=True)
class Fault:
    unavailable_ratio: float = 0.0
    delay_ms: int = 0

    def __post_init__(self) -> None:
        # NaN fails every comparison, so `not 0 <= x <= 1` also rejects it.
        if not 0.0 <= self.unavailable_ratio <= 1.0:
            raise InvalidArgument(field="unavailable_ratio", description="must be between 0 and 1")
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise InvalidArgument(
                field="delay_ms", description=f"must be between 0 and {MAX_DELAY_MS}"
            )


class FaultInjector:
    def __init__(self, fault: Fault, rng: random.Random | None = None) -> None:
        self._fault = fault
        # Seedable so a test can replay one exact sequence of failures.
        self._rng = rng or random.Random()

    @property
    def fault(self) -> Fault:
        return self._fault

    def set(self, fault: Fault) -> Fault:
        self._fault = fault
        return fault

    async def before_write(self, method: str) -> None:
        """Delay, then maybe fail; call before anything else in Charge and Refund."""
        fault = self._fault
        await self._delay(fault)
        if fault.unavailable_ratio > 0 and self._rng.random() < fault.unavailable_ratio:
            raise Unavailable(
                f"payment {method} failed by injected fault"
                f" (unavailable_ratio={fault.unavailable_ratio}); nothing was changed, retry"
            )

    async def before_read(self) -> None:
        await self._delay(self._fault)

    @staticmethod
    async def _delay(fault: Fault) -> None:
        if fault.delay_ms > 0:
            await asyncio.sleep(fault.delay_ms / 1000)
