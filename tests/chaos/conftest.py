"""The chaos tests share the session's one mesh (tests/conftest.py). Each scenario puts the
mesh back to healthy when it ends; this fixture also waits for a healthy mesh before each
test, so a test never inherits an ejection or a fault from whatever ran before it, and
for the mesh to settle (its own CPU use low), so a scenario does not measure the tail
of the mesh's start-up or of the previous scenario."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tools.chaos import probe
from tools.mesh.plan import MeshPlan


@pytest.fixture(autouse=True)
async def healthy_mesh(mesh: MeshPlan) -> AsyncIterator[MeshPlan]:
    await probe.restore(mesh)
    await probe.settled(mesh)
    yield mesh
    health = await probe.mesh_health(mesh)
    assert health.healthy, f"the scenario left the mesh unhealthy: {health}"
