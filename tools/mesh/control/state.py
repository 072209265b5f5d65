"""The live state of a mesh's instances: Consul's health of each and of its sidecar, its
sidecar's readiness, and its supervisord process."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

from tools.mesh import envoy
from tools.mesh.health import STATUS_RANK
from tools.mesh.http import request
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor


@dataclass(frozen=True)
class InstanceState:
    instance_id: str
    health: str  # passing / warning / critical / missing
    sidecar_health: str
    sidecar_ready: str  # LIVE / PRE_INITIALIZING / DOWN
    process: str  # supervisord state of the service process, e.g. RUNNING
    pid: int


def check_states(plan: MeshPlan, index: str = "0", wait: str = "") -> tuple[dict[str, str], str]:
    """Aggregated status per ServiceID from Consul, and the index for the next blocking
    query (with ``wait`` the call returns early only when something changes)."""
    query = {"index": index, "wait": wait} if wait else {}
    url = f"{plan.consul_url}/v1/health/state/any?{urllib.parse.urlencode(query)}"
    body, headers = request(url, timeout=10, token=plan.consul_token)
    worst: dict[str, str] = {}
    for check in json.loads(body):
        sid = check.get("ServiceID") or ""
        if not sid:
            continue
        status = check["Status"]
        if STATUS_RANK.get(status, 2) >= STATUS_RANK.get(worst.get(sid, "passing"), 0):
            worst[sid] = status
    return worst, headers.get("X-Consul-Index", "0")


def instance_states(plan: MeshPlan, checks: dict[str, str] | None = None) -> list[InstanceState]:
    if checks is None:
        checks, _ = check_states(plan)
    sup = Supervisor(plan)
    procs = {p["name"]: p for p in sup.processes()} if sup.running() else {}
    states = []
    for inst in plan.instances():
        proc = procs.get(inst.instance_id, {})
        states.append(
            InstanceState(
                instance_id=inst.instance_id,
                health=checks.get(inst.instance_id, "missing"),
                sidecar_health=checks.get(inst.sidecar_id, "missing"),
                sidecar_ready=envoy.ready(inst.admin_url),
                process=str(proc.get("statename", "-")),
                pid=int(proc.get("pid", 0)),
            )
        )
    return states
