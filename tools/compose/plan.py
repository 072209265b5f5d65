"""A mesh plan for one container: the mesh's own code (tools/mesh) run inside a pod.

tools/mesh derives everything from a MeshPlan whose processes all share one address,
the Consul agent's included. In docker-compose.yml each pod has its own address and
Consul is another container, so the plan's Consul address is given separately; the
rest (ports, registration bodies, commands) is the mesh's code, unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tools.mesh.plan import MeshPlan
from tools.mesh.topology import load_topology


@dataclass(frozen=True)
class ContainerPlan(MeshPlan):
    """A mesh plan whose Consul agent is elsewhere (host:port of its HTTP API)."""

    consul_addr: str = "consul:8500"
    # The compose wiring carries no Consul tokens yet: its Consul runs without ACLs,
    # whatever topology.toml's [mesh] acl says (docs/mesh.md, Consul ACLs).
    acl: bool | None = False

    @property
    def consul_http(self) -> str:
        return self.consul_addr


def plan_from_environment(address_variable: str) -> ContainerPlan:
    """The plan of the pod this process runs in, from the variables docker-compose.yml
    sets: its address (``address_variable``), Consul's, and the run directory."""
    try:
        address = os.environ[address_variable]
    except KeyError:
        raise SystemExit(f"error: {address_variable} is required (the pod's IP)") from None
    return ContainerPlan(
        topology=load_topology(),
        address=address,
        run_dir=Path(os.environ.get("MESHMART_RUN_DIR", "/var/lib/meshmart/run")),
        consul_addr=os.environ.get("MESHMART_CONSUL_HTTP_ADDR", "consul:8500"),
    )
