"""The components of a mesh run, and the run they make with Consul and the instances:
every program supervisord runs, the environment of every instance, the calls the
intentions must allow.

A new part of the mesh (pods, hosts, a web service) is a class implementing
tools/mesh/component.py and one more entry in ``components``.
"""

from __future__ import annotations

from tools.mesh import acl, hosts
from tools.mesh.component import Component
from tools.mesh.edge.mesh import Edge
from tools.mesh.nats import Nats
from tools.mesh.observability import Observability
from tools.mesh.operator import Operator
from tools.mesh.plan import MeshPlan, Program
from tools.mesh.postgres import Postgres
from tools.mesh.topology import Instance
from tools.mesh.version import source_version


def components(plan: MeshPlan) -> list[Component]:
    """Every component of ``plan``'s run, in the order their programs, their blocks of
    `make status` and their hints come."""
    return [
        Edge(plan),  # the edge gateway (tools/mesh/edge)
        Nats(plan),  # the event bus (tools/mesh/nats.py)
        Postgres(plan),  # the databases, on a mesh run on PostgreSQL (tools/mesh/postgres.py)
        hosts.Hosts(plan),  # the hosts and their agents, with more than one (tools/mesh/hosts.py)
        Operator(plan),  # the operator's identity and sidecar (tools/mesh/operator.py)
        Observability(plan),  # Prometheus, Zipkin (tools/mesh/observability.py)
    ]


def service_env(
    plan: MeshPlan, inst: Instance, version: str, parts: list[Component] | None = None
) -> dict[str, str]:
    """The whole environment of instance ``inst``: what each component adds (event bus
    upstream, /metrics port, Zipkin) under the plan's own settings."""
    env: dict[str, str] = {}
    for part in components(plan) if parts is None else parts:
        env.update(part.service_env(inst))
    env.update(plan.service_env(inst, version))
    return env


def edges(plan: MeshPlan) -> set[tuple[str, str]]:
    """The (caller, callee) pairs the components add to topology.toml's call graph."""
    return set().union(*(part.edges() for part in components(plan)))


def programs(plan: MeshPlan) -> list[Program]:
    """Every program of the run: Consul, each instance and its sidecar, then each
    component's."""
    parts = components(plan)
    version = source_version(plan.root)
    acl_args = ["-hcl", acl.AGENT_ACL_HCL] if plan.acl_enabled else []
    consul = plan.program(
        "consul",
        "infra",
        [
            str(plan.bin / "consul"), "agent",
            "-config-file", str(plan.root / "consul" / "agent.hcl"),
            "-data-dir", str(plan.consul_data_dir),
            # With pods the agent is the node's, on the host side of their bridge: its
            # checks come from there (an exposed check path admits only the agent's own
            # address), and its HTTP API also answers on the loopback.
            "-bind", plan.shared_address,
            "-client", " ".join(dict.fromkeys([plan.address, plan.shared_address])),
            "-advertise", plan.shared_address,
            *(arg for part in parts for arg in part.consul_args()),
            # More hosts: host 1's agent is one of the servers (tools/mesh/hosts.py).
            *hosts.cluster_args(plan, 1),
            # Default-deny ACLs (tools/mesh/acl.py): `up` bootstraps them.
            *acl_args,
        ],
        priority=10,
        autostart=True,
        # SIGINT: Consul's graceful shutdown (flushes raft, closes listeners).
        stop_signal="INT",
        stop_wait=15,
    )
    result = [consul, *hosts.agent_programs(plan, acl_args)]
    for inst in plan.instances():
        result.append(plan.program(
            inst.instance_id,
            "services",
            plan.in_pod(inst, plan.instance_command(inst)),
            env=service_env(plan, inst, version, parts),
            priority=300,
            # Started by `up` once Consul has its config entries (intentions!).
            autostart=False,
            # serve(): NOT_SERVING -> deregister -> drain -> stop(grace 10s).
            stop_signal="TERM",
            stop_wait=20,
        ))
        result.append(plan.sidecar_program(inst))
    for part in parts:
        result += part.programs()
    return result
