"""The chaos tests share the session's one mesh (tests/conftest.py). Each scenario puts the
mesh back to healthy when it ends; this fixture also waits for a healthy mesh before each
test, so a test never inherits an ejection or a fault from whatever ran before it, and
for the mesh to settle (its own CPU use low), so a scenario does not measure the tail
of the mesh's start-up or of the previous scenario."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from harness.host import settled
from tools.chaos import probe
from tools.mesh.plan import MeshPlan


@pytest.fixture(autouse=True)
async def healthy_mesh(mesh: MeshPlan) -> AsyncIterator[MeshPlan]:
    await probe.restore(mesh)
    await settled(mesh)
    yield mesh
    health = await probe.mesh_health(mesh)
    assert health.healthy, f"the scenario left the mesh unhealthy: {health}"


# What each scenario measured, printed at the end of the run (and kept in
# .run/chaos/numbers.md): the figures belong in a report, the tests assert the claims.
_NUMBERS: list[str] = []
NUMBERS_FILE = Path(__file__).resolve().parents[2] / ".run" / "chaos" / "numbers.md"


@pytest.fixture
def numbers(request: pytest.FixtureRequest) -> Callable[[str], None]:
    def note(text: str) -> None:
        _NUMBERS.append(f"{request.node.name}\n" + "\n".join(f"    {line}"
                                                             for line in text.splitlines()))

    return note


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _NUMBERS:
        return
    terminalreporter.section("chaos numbers")
    for entry in _NUMBERS:
        terminalreporter.write_line(entry)
    NUMBERS_FILE.parent.mkdir(parents=True, exist_ok=True)
    NUMBERS_FILE.write_text("\n".join(_NUMBERS) + "\n")
