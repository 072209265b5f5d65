"""The interface of a mesh component: a part of a mesh run beside Consul and the service
instances with their sidecars (NATS, Prometheus and Zipkin, the edge gateway, ...).

A component is built from the ``MeshPlan`` of the run and answers for its own part at
each point where `python -m tools.mesh` needs one: the programs supervisord runs, what
Consul's agent and every service instance are given, the calls the intentions must
allow, readiness, `make status` and the hints `make up` prints. Each method has a
default that adds nothing, so a component implements only the points it uses.
tools/mesh/control/components.py holds the list of the components of a run. The
helpers below serve components that are a Connect service of their own.
"""

from __future__ import annotations

from typing import Protocol

from tools.mesh import envoy
from tools.mesh.cli import run_args
from tools.mesh.health import service_health
from tools.mesh.plan import MeshPlan, Program
from tools.mesh.topology import Instance


class Component(Protocol):
    def programs(self) -> list[Program]:
        """The supervisord programs of this component (none when it does not run)."""
        return []

    def consul_args(self) -> list[str]:
        """Extra command-line arguments of the Consul agent."""
        return []

    def service_env(self, inst: Instance) -> dict[str, str]:
        """Environment added to service instance ``inst``."""
        return {}

    def edges(self) -> set[tuple[str, str]]:
        """(caller, callee) pairs this component adds to topology.toml's call graph, which
        the intentions must allow."""
        return set()

    def wait_ready(self, deadline: float) -> list[str]:
        """Block until the component is ready (raise past ``deadline``); returns notices
        for the operator (e.g. a part skipped because its binary is missing)."""
        return []

    def render_status(self) -> str:
        """Its block of `make status`, or "" for none."""
        return ""

    def hints(self) -> str:
        """Its lines of the hints `make up` prints at the end, or "" for none."""
        return ""


# --- for components that are a Connect service (the edge, NATS) ----------------------
def wrapper_programs(
    plan: MeshPlan, inst: Instance, module: str, group: str, *,
    priority: int, autostart: bool, stop_wait: int,
) -> list[Program]:
    """``inst`` run by its wrapper, ``python -m <module> run``, which registers it with
    its sidecar (as the kit does for a Python service) and then execs its binary; and
    that sidecar. The binary stops gracefully on SIGTERM."""
    return [
        plan.program(
            inst.instance_id, group, [plan.python, "-m", module, "run", *run_args(plan)],
            priority=priority, autostart=autostart, stop_signal="TERM", stop_wait=stop_wait,
        ),
        plan.sidecar_program(inst),
    ]


def connect_health(plan: MeshPlan, inst: Instance) -> dict[str, str]:
    """Consul's health of ``inst``'s service and of its sidecar, and the sidecar's Envoy
    readiness."""
    return {
        "health": service_health(plan.consul_url, inst.service),
        "sidecar": envoy.ready(inst.admin_url),
        "sidecar_health": service_health(plan.consul_url, f"{inst.service}-sidecar-proxy"),
    }
