"""The edge gateway's container entry: `python -m tools.compose.edge` (the edge image's CMD).

It does what `python -m tools.mesh.edge run` does for `make up` (render the edge's Envoy
config, register edge-1 and its sidecar in Consul, exec Envoy), through the same code
(tools.mesh.edge), in a pod: the edge's address is its container IP
(MESHMART_EDGE_ADDRESS), where Envoy listens and where Consul's check and the sidecar
reach it, and Consul is another container (MESHMART_CONSUL_HTTP_ADDR).

MESHMART_RUN_DIR is where the rendered files go (<run>/edge) and where the user
service's JWKS is mounted (<run>/keys, read-only).
"""

from __future__ import annotations

import sys

from tools.compose.plan import plan_from_environment
from tools.mesh.cli import exec_binary
from tools.mesh.edge.mesh import Edge, EdgeError
from tools.mesh.topology import TopologyError


def main() -> int:
    plan = plan_from_environment("MESHMART_EDGE_ADDRESS")
    try:
        edge = Edge(plan)
        edge.write_files()
        edge.register(timeout=60.0)
        command = edge.envoy_command()
    except (EdgeError, TopologyError, OSError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    exec_binary(f"edge: registered in Consul at {plan.consul_http}", command)


if __name__ == "__main__":
    sys.exit(main())
