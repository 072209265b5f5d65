"""`up` refuses a Consul that is not its mesh's: when ours cannot bind its ports (another
mesh or Consul holds them) it exits, and the one answering at our address is the other.
A real Consul agent stands for the other mesh's: its leader is another address."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from harness.host import free_mesh_address
from harness.wait import until_blocking
from tools.mesh.control.errors import MeshError
from tools.mesh.control.up import wait_for_consul
from tools.mesh.http import HTTPFailure, get_json
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]


def test_up_refuses_a_consul_whose_leader_is_not_one_of_its_servers(tmp_path: Path) -> None:
    topology = load_topology()
    address = free_mesh_address(topology)
    other = free_mesh_address(topology, first=int(address.rsplit(".", 1)[1]) + 1)
    plan = MeshPlan(topology=topology, address=address, run_dir=tmp_path / "run", pods=False)
    consul = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "consul"), "agent",
         "-config-file", str(ROOT / "consul" / "agent.hcl"),
         "-data-dir", str(tmp_path / "consul"),
         # It answers where our mesh's agent would, but it is another's: it advertises
         # (and so leads from) another address.
         "-bind", address, "-client", address, "-advertise", other],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        until_blocking(lambda: get_json(f"{plan.consul_url}/v1/status/leader", timeout=2),
                       within=60, what="the other Consul elects itself",
                       not_yet=(HTTPFailure,))
        started = time.monotonic()
        with pytest.raises(MeshError, match=f"not this mesh's: its leader is {other}:"):
            wait_for_consul(plan, deadline=started + 30)
        assert time.monotonic() - started < 5, "refused at once, not at the deadline"
    finally:
        consul.kill()
        consul.wait(timeout=30)
