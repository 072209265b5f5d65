"""The whole shop in-process (harness/shop.py), fresh for each order test, on each engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness.postgres import Databases
from harness.shop import SERVICES, Shop, running_shop


@pytest.fixture
async def shop(tmp_path: Path, databases: Databases) -> AsyncIterator[Shop]:
    """On SQLite, and again with every service on PostgreSQL."""
    async with running_shop(tmp_path, database_urls=databases.urls(*SERVICES)) as shop:
        yield shop
