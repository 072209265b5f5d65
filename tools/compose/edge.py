"""The edge gateway's container entry: `python -m tools.compose.edge` (the edge image's CMD).

It does what `python -m tools.mesh.edge run` does for `make up` (render the edge's Envoy
config, register edge-1 and its sidecar in Consul, exec Envoy), through the same code
(tools.mesh.edge), with the two things that differ in a container:

- the edge's address is its container IP (MESHMART_EDGE_ADDRESS), where Envoy listens
  and where Consul's check and the sidecar reach it;
- Consul is another container (MESHMART_CONSUL_HTTP_ADDR, e.g. consul:8500), not an
  agent on the edge's own address.

MESHMART_RUN_DIR is where the rendered files go (<run>/edge) and where the user
service's JWKS is mounted (<run>/keys, read-only).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT, TopologyError, load_topology


@dataclass(frozen=True)
class ContainerPlan(MeshPlan):
    """A mesh plan whose Consul agent is elsewhere (host:port of its HTTP API)."""

    consul_addr: str = "consul:8500"

    @property
    def consul_http(self) -> str:
        return self.consul_addr


def main() -> int:
    # Imported here: the edge package is optional for the rest of tools.compose.
    from tools.mesh.edge.mesh import Edge, EdgeError

    try:
        address = os.environ["MESHMART_EDGE_ADDRESS"]
        plan = ContainerPlan(
            topology=load_topology(),
            address=address,
            run_dir=Path(os.environ.get("MESHMART_RUN_DIR", str(ROOT / ".run"))),
            consul_addr=os.environ.get("MESHMART_CONSUL_HTTP_ADDR", "consul:8500"),
        )
        edge = Edge(plan)
        edge.write_files()
        edge.register(timeout=60.0)
        command = edge.envoy_command()
    except KeyError as missing:
        sys.stderr.write(f"error: {missing.args[0]} is required (the edge's container IP)\n")
        return 2
    except (EdgeError, TopologyError, OSError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    sys.stderr.write(f"edge: registered in Consul at {plan.consul_http}; exec {command[0]}\n")
    sys.stderr.flush()
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
