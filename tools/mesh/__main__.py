"""`python -m tools.mesh <command>`: the mesh's command line (what `make up` etc. run).

  up       start (or complete) the mesh, wait until every instance passes, print status
  down     stop everything gracefully; fails if any process of the mesh survives
  status   the live table: instances, health, sidecars, and each caller's circuits
  logs S   follow the logs of service S (its instances and their sidecars)
           with --trace ID: the lines of one trace (of S, or of every service), oldest first
  ports    the derived port plan of topology.toml
  config   write the supervisord config of the run without starting anything

Options --address and --run-dir select another mesh (the tests run one on 127.0.0.2);
--pods runs each instance in its own network namespace (tools/mesh/pods.py).
"""

from __future__ import annotations

import sys
from dataclasses import replace

from tools.mesh import control
from tools.mesh.cli import mesh_parser, plan_of, pods_notice
from tools.mesh.edge.mesh import EdgeError
from tools.mesh.entries import EntriesError
from tools.mesh.nats import NatsError
from tools.mesh.observability import ObservabilityError, trace_log_lines
from tools.mesh.operator import Operator, OperatorError
from tools.mesh.supervisor import render
from tools.mesh.topology import TopologyError


def main(argv: list[str] | None = None) -> int:
    parser = mesh_parser("python -m tools.mesh", __doc__,
                         ["up", "down", "status", "logs", "ports", "config"])
    parser.add_argument("service", nargs="?", help="for logs: the service name")
    parser.add_argument("--trace", help="for logs: only the lines of this trace id")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--envoy-concurrency", type=int, default=None,
                        help="Envoy workers per sidecar (default: topology.toml [mesh])")
    args = parser.parse_args(argv)
    try:
        plan = plan_of(args)
        topology = plan.topology
        plan = replace(plan, envoy_concurrency=(
            args.envoy_concurrency if args.envoy_concurrency is not None
            else topology.rules.envoy_concurrency))
        if args.command == "up":
            if notice := pods_notice(args, plan):
                sys.stdout.write(notice + "\n")
            control.up(plan, timeout=args.timeout)
        elif args.command == "down":
            control.down(plan, timeout=args.timeout)
        elif args.command == "status":
            sys.stdout.write(control.render_status(plan) + "\n")
        elif args.command == "logs" and args.trace:
            # tools/mesh/observability.py; `make logs S=order TRACE=<id>`
            lines = trace_log_lines(plan, args.trace, args.service)
            sys.stdout.write("".join(f"{line}\n" for line in lines))
            if not lines:
                sys.stderr.write(f"no log line of trace {args.trace} in {plan.logs_dir}\n")
                return 1
        elif args.command == "logs":
            if not args.service:
                parser.error("logs needs a service: make logs S=catalog")
            control.logs(plan, args.service)
        elif args.command == "ports":
            for inst in topology.instances(args.address):
                ups = ", ".join(f"{u}={inst.upstream_target(u)}" for u in inst.upstream_ports)
                sys.stdout.write(
                    f"{inst.instance_id:<18} grpc {inst.port}  sidecar {inst.sidecar_port}  "
                    f"admin {inst.admin_port}  metrics {inst.metrics_port}  {ups}\n"
                )
            # The operator's listeners (tools/mesh/operator.py): what grpcurl dials.
            op = Operator(plan).instance
            ups = ", ".join(f"{u}={op.upstream_target(u)}" for u in op.upstream_ports)
            sys.stdout.write(f"{op.instance_id:<18} sidecar {op.sidecar_port}  "
                             f"admin {op.admin_port}  metrics {op.metrics_port}  {ups}\n")
        elif args.command == "config":
            plan.run_dir.mkdir(parents=True, exist_ok=True)
            plan.supervisor_conf.write_text(render(plan, control.programs(plan)))
            sys.stdout.write(f"{plan.supervisor_conf}\n")
    except (control.MeshError, EntriesError, TopologyError, ObservabilityError,
            OperatorError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    except (EdgeError, NatsError) as error:
        # The edge or NATS did not come up (or register); what did start keeps running.
        sys.stderr.write(
            f"error: {error}\nnext: read that log; `make status` shows what is running, "
            "`make down` stops it\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
