"""`logs S`: follow the logs of one service's instances and their sidecars."""

from __future__ import annotations

import os

from tools.mesh.control.errors import MeshError
from tools.mesh.plan import MeshPlan


def logs(plan: MeshPlan, service: str) -> None:
    """Follow the logs of every instance of ``service`` and of its sidecars (exec tail)."""
    if service not in plan.topology.services and service != "consul":
        raise MeshError(f"unknown service {service!r}; one of {', '.join(plan.topology.services)}")
    if service == "consul":
        files = [plan.logs_dir / "consul.log"]
    else:
        files = sorted(plan.logs_dir.glob(f"{service}-[0-9]*.log"))
    if not files:
        raise MeshError(f"no logs for {service} in {plan.logs_dir} (is the mesh up?)")
    os.execvp("tail", ["tail", "-n", "30", "-F", *map(str, files)])
