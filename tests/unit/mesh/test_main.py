"""`python -m tools.mesh`: a part of the mesh that does not come up ends the command
with the error and what to do next, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.mesh import __main__ as mesh_main
from tools.mesh import control
from tools.mesh.edge.mesh import EdgeError
from tools.mesh.nats import NatsError
from tools.mesh.plan import MeshPlan


@pytest.mark.parametrize(
    "error",
    [
        EdgeError("edge not ready before the deadline: {}; see .run/logs/edge-1.log"),
        NatsError("could not register nats-1: connection refused"),
    ],
)
def test_an_edge_or_nats_failure_prints_the_error_and_the_next_step_and_exits_1(
    error: Exception,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def up(plan: MeshPlan, timeout: float) -> None:
        raise error

    monkeypatch.setattr(control, "up", up)

    assert mesh_main.main(["up", "--run-dir", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"error: {error}\n")
    assert "`make status`" in err and "`make down`" in err
