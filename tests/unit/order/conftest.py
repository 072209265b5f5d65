"""The whole shop in-process (harness/shop.py), fresh for each order test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness.shop import Shop, running_shop


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    async with running_shop(tmp_path) as shop:
        yield shop
