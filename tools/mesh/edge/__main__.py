"""`python -m tools.mesh.edge <command>`: the edge gateway's command line.

  render   write <run>/edge/ (Envoy config, descriptor set, OpenAPI) and envoy/edge.yaml
           --direct: send calls straight to each service's first instance (no mesh, no
           sidecar; for `make run-local` style work on the edge itself)
  check    fail when envoy/edge.yaml is not what `render` would write
  run      render, register edge-1 in Consul, then exec Envoy (what supervisord runs)
"""

from __future__ import annotations

import sys

from tools.mesh.cli import exec_binary, mesh_parser, plan_of
from tools.mesh.edge.mesh import COMMITTED_CONFIG, Edge, EdgeError
from tools.mesh.topology import ROOT, TopologyError


def main(argv: list[str] | None = None) -> int:
    parser = mesh_parser("python -m tools.mesh.edge", __doc__, ["render", "check", "run"])
    parser.add_argument("--direct", action="store_true",
                        help="render: upstreams are the services themselves (no mesh)")
    args = parser.parse_args(argv)
    try:
        plan = plan_of(args)
        edge = Edge(plan)
        committed = ROOT / COMMITTED_CONFIG
        if args.command == "check":
            if not committed.exists() or committed.read_text() != edge.committed_config():
                sys.stderr.write(f"{COMMITTED_CONFIG} is stale: run "
                                 "`python -m tools.mesh.edge render`\n")
                return 1
            return 0
        if args.direct:
            edge = DirectEdge(plan)
        edge.write_files()
        if args.command == "render":
            if not args.direct:
                committed.write_text(edge.committed_config())
                sys.stdout.write(f"{committed}\n")
            sys.stdout.write(f"{edge.config_path}\n")
            return 0
        edge.register()
        exec_binary(f"edge: {edge.url} registered as edge-1", edge.envoy_command())
    except (EdgeError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1


class DirectEdge(Edge):
    """The edge without the mesh: calls go to each service's first instance."""

    def targets(self) -> dict[str, tuple[str, int]]:
        return {name: (self.plan.address, self.plan.topology.services[name].port)
                for name in self.callees}


if __name__ == "__main__":
    sys.exit(main())
