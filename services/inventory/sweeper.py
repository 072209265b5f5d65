"""The background task that returns the stock of abandoned reservations.

Every ledger operation already expires what is due before it looks at stock, so the
sweeper is not needed for correctness; it makes expired stock show up as available (and
expired reservations as EXPIRED in the database) even while nobody calls inventory.
"""

from __future__ import annotations

import asyncio

from services.inventory.store import StockLedger
from services.kit.logging import get_logger
from services.kit.worker import BackgroundWorker

log = get_logger("inventory.sweeper")


class ExpirySweeper(BackgroundWorker):
    def __init__(self, ledger: StockLedger, *, interval_seconds: float) -> None:
        super().__init__(task_name="inventory-expiry-sweeper")
        self._ledger = ledger
        self._interval_seconds = interval_seconds

    async def sweep_once(self) -> int:
        expired = await self._ledger.db.run(self._ledger.expire_due)
        if expired:
            log.info("inventory.reservations_expired", count=expired)
        return expired

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_seconds)
            try:
                await self.sweep_once()
            except Exception:
                # A locked or briefly unavailable database must not kill the sweeper;
                # the next round (and every RPC) expires whatever is still due.
                log.exception("inventory.sweep_failed")
