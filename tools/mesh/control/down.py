"""`down`: stop a mesh gracefully (services, then sidecars, then Consul) and make sure
no process of it survives, supervisord's or a stray one."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from tools.mesh.control.errors import MeshError, writer
from tools.mesh.plan import MESH_MARKER, MeshPlan
from tools.mesh.supervisor import Supervisor


def mesh_pids(run_dir: Path) -> list[int]:
    """Pids of every live process carrying this mesh's marker in its environment."""
    marker = f"{MESH_MARKER}={run_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return sorted(pids)


def down(plan: MeshPlan, *, timeout: float = 60.0, out: TextIO = sys.stdout) -> list[int]:
    """Stop the mesh gracefully; returns the pids that had to be killed (ideally none)."""
    say = writer(out)
    sup = Supervisor(plan)
    deadline = time.monotonic() + timeout
    if sup.running():
        # Services first: each turns NOT_SERVING, deregisters and drains while the
        # sidecars still carry its in-flight calls; then the sidecars; Consul last.
        say("stopping services (graceful: NOT_SERVING -> deregister -> drain)...")
        sup.stop_group("services")
        say("stopping sidecars...")
        sup.stop_group("sidecars")
        say("stopping consul...")
        sup.stop("infra:consul")
        daemon = sup.pid()
        sup.shutdown()
        while daemon and _alive(daemon) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        say(f"no supervisord running for {plan.run_dir}")
    killed = []
    # Anything left (supervisord crashed, a stray child): TERM, then KILL at the deadline.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = mesh_pids(plan.run_dir)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        killed = left
        stop_at = min(deadline, time.monotonic() + 10)
        while mesh_pids(plan.run_dir) and time.monotonic() < stop_at:
            time.sleep(0.1)
    if killed:
        say(f"warning: had to signal leftover pids {killed}")
    left = mesh_pids(plan.run_dir)
    if left:
        raise MeshError(f"processes of the mesh survived SIGKILL: {left}")
    if remove_pods(plan):
        say(f"removed the pods and bridge {plan.pod_network.bridge}")
    plan.supervisor_sock.unlink(missing_ok=True)
    say("mesh stopped; no process left")
    return killed


def remove_pods(plan: MeshPlan) -> bool:
    """Remove the namespaces and bridge <run>/pods records (made by `up`); False when
    the run has none."""
    try:
        pods = plan.pods_record.read_text().split()
    except FileNotFoundError:
        return False
    plan.pod_network.destroy(pods)  # the hosts' namespaces are among them
    plan.pods_record.unlink()
    plan.hosts_record.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
