"""What a test or benchmark reads from the machine it runs on: a loopback address or a
port that is free, the CPU time a process (or a whole mesh) has used, and when a mesh's
own processes have gone quiet."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from tools.mesh import control
from tools.mesh.observability import PROMETHEUS_PORT, ZIPKIN_PORT
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import Topology


def free_loopback(*ports: int, first: int = 2) -> str:
    """The first 127.0.0.x (x >= ``first``) where every one of ``ports`` is free, so what
    a benchmark starts never meets another mesh (a test mesh, `make up`, another bench).
    Each benchmark starts its search elsewhere, so two of them rarely race for one."""
    for last in range(first, 250):
        address = f"127.0.0.{last}"
        if all(_free(address, port) for port in ports):
            return address
    raise RuntimeError(f"no loopback address from 127.0.0.{first} with ports {ports} free")


def free_mesh_address(topology: Topology, *, first: int = 2) -> str:
    """The first 127.0.0.x (x >= ``first``) where every port a mesh binds on its address
    is free: Consul's six, Prometheus's and Zipkin's. A mesh started there meets no other
    mesh's Consul (one that found a single port taken would exit, and `up` would talk to
    the other's)."""
    r = topology.rules
    consul = (r.consul_http_port, r.consul_grpc_port, r.consul_dns_port,
              r.consul_server_port, r.consul_serf_lan_port, r.consul_serf_wan_port)
    return free_loopback(*consul, PROMETHEUS_PORT, ZIPKIN_PORT, first=first)


def _free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel has free on ``host`` now (free until someone binds it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mesh_cpu_seconds(plan: MeshPlan) -> float:
    """CPU time used so far by every live process of the mesh (found by its marker)."""
    total = 0.0
    for pid in control.mesh_pids(plan.run_dir):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue  # exited in the meantime
    return total


async def settled(
    plan: MeshPlan, *, max_cores: float = 0.35, window: float = 2.0, within: float = 60
) -> float:
    """Wait until the mesh's own processes use less than ``max_cores`` of CPU over
    ``window`` seconds: after a start, a restart or a scenario the mesh keeps working for
    a while (Python start-ups, Envoy config pushes, consumers catching up, the JVM of
    Zipkin warming), and a scenario measured on top of that measures that too. Returns
    the CPU share last seen; after ``within`` seconds it returns anyway (the caller's
    numbers then carry the noise)."""
    deadline = time.monotonic() + within
    while True:
        before = await asyncio.to_thread(mesh_cpu_seconds, plan)
        await asyncio.sleep(window)
        used = (await asyncio.to_thread(mesh_cpu_seconds, plan) - before) / window
        if used < max_cores or time.monotonic() > deadline:
            return used
