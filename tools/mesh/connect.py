"""What a mesh component that is a Connect service of its own (the edge, NATS) shares:
its programs (a wrapper that registers it, then execs its binary; its sidecar) and its
health as Consul and its sidecar see it."""

from __future__ import annotations

from tools.mesh import envoy
from tools.mesh.cli import run_args
from tools.mesh.health import service_health
from tools.mesh.plan import MeshPlan, Program
from tools.mesh.topology import Instance


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
        "health": service_health(plan.consul_url, inst.service, plan.consul_token),
        "sidecar": envoy.ready(inst.admin_url),
        "sidecar_health": service_health(plan.consul_url, f"{inst.service}-sidecar-proxy",
                                         plan.consul_token),
    }
