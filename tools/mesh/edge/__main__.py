"""`python -m tools.mesh.edge <command>`: the edge gateway's command line.

  render   write <run>/edge/ (Envoy config, descriptor set, OpenAPI) and envoy/edge.yaml
           --direct: send calls straight to each service's first instance (no mesh, no
           sidecar; for `make run-local` style work on the edge itself)
  check    fail when envoy/edge.yaml is not what `render` would write
  run      render, register edge-1 in Consul, then exec Envoy (what supervisord runs)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tools.mesh.edge.mesh import COMMITTED_CONFIG, Edge, EdgeError
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT, TopologyError, load_topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mesh.edge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["render", "check", "run"])
    parser.add_argument("--address", default="127.0.0.1", help="loopback address of the mesh")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    parser.add_argument("--direct", action="store_true",
                        help="render: upstreams are the services themselves (no mesh)")
    args = parser.parse_args(argv)
    try:
        plan = MeshPlan(topology=load_topology(), address=args.address,
                        run_dir=args.run_dir.resolve())
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
        command = edge.envoy_command()
        sys.stderr.write(f"edge: {edge.url} registered as edge-1; exec {command[0]}\n")
        sys.stderr.flush()
        os.execv(command[0], command)
    except (EdgeError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return 0


class DirectEdge(Edge):
    """The edge without the mesh: calls go to each service's first instance."""

    def targets(self) -> dict[str, tuple[str, int]]:
        return {name: (self.plan.address, self.plan.topology.services[name].port)
                for name in self.callees}


if __name__ == "__main__":
    sys.exit(main())
