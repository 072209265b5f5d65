"""Reading and poking a running mesh from a scenario, without blocking its load.

Every call to Consul, Envoy's admin API or supervisord here is a small synchronous HTTP /
XML-RPC request; the async wrappers run them in a worker thread so the load generator on
the event loop keeps its schedule while a scenario waits for the mesh.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass

import grpc

from harness.mesh import pid_of

# Re-exported for the scenarios: payment's knob, through the operator's sidecar.
from harness.operator import payment_faults as payment_faults
from harness.operator import set_payment_fault as set_payment_fault
from harness.wait import TimedOut, until
from tools.mesh import control, envoy
from tools.mesh.http import HTTPFailure
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import Instance


class ChaosError(AssertionError):
    """The mesh did not reach a state a scenario waits for (the message says which)."""


# How a scenario waits (harness.wait): sync probes run in a worker thread, so the load on
# the event loop keeps its schedule, and Consul, an Envoy or a process not answering (yet)
# is "not yet".
NOT_ANSWERING = (HTTPFailure, grpc.aio.AioRpcError)


# --------------------------------------------------------------------------- processes


def program(plan: MeshPlan, instance_id: str) -> str:
    """supervisord's name of an instance's process ("services:catalog-1")."""
    return f"services:{instance_id}"


async def kill_9(plan: MeshPlan, name: str) -> int:
    """SIGKILL the process of program ``name`` (no goodbye: no deregistration, no drain);
    supervisord notices the exit and starts it again. Returns the killed pid."""
    pid = await asyncio.to_thread(pid_of, plan, name)
    if not pid:
        raise ChaosError(f"{name} is not running")
    os.kill(pid, signal.SIGKILL)
    return pid


async def restarted(plan: MeshPlan, name: str, old_pid: int, within: float = 60) -> float:
    """Seconds until supervisord runs ``name`` again under a new pid."""
    return await until(
        lambda: pid_of(plan, name) not in (0, old_pid), within, f"{name} restarted by supervisord",
        in_thread=True, not_yet=NOT_ANSWERING,
    )


async def graceful_restart(plan: MeshPlan, instance_id: str) -> None:
    """supervisorctl restart: SIGTERM (serve(): NOT_SERVING -> deregister -> drain -> stop),
    wait for the exit, start again. Both calls block, hence the worker thread."""
    sup = Supervisor(plan)
    await asyncio.to_thread(sup.stop, program(plan, instance_id))
    await asyncio.to_thread(sup.start, program(plan, instance_id))


# --------------------------------------------------------------------------- Consul / Envoy


def host_of(caller: Instance, upstream: str, callee: Instance) -> envoy.HostState | None:
    """How ``caller``'s sidecar sees ``callee`` in its ``upstream`` cluster (None: not
    among its endpoints at all)."""
    wanted = f"{callee.address}:{callee.sidecar_port}"
    return next((h for h in envoy.hosts(caller.admin_url, upstream) if h.address == wanted), None)


def routable(caller: Instance, upstream: str, callee: Instance) -> bool:
    """``caller``'s Envoy would send a call to ``callee`` now."""
    host = host_of(caller, upstream, callee)
    return host is not None and host.healthy


def serving(plan: MeshPlan, callers: list[tuple[Instance, str]], callee: Instance) -> bool:
    """Consul passes ``callee`` and its sidecar, and every (caller, upstream) routes to it."""
    checks, _ = control.check_states(plan)
    if checks.get(callee.instance_id) != "passing" or checks.get(callee.sidecar_id) != "passing":
        return False
    return all(routable(caller, upstream, callee) for caller, upstream in callers)


def callers_of(plan: MeshPlan, service: str) -> list[tuple[Instance, str]]:
    """Every (caller instance, upstream name) of the plan whose sidecar routes to
    ``service``."""
    return [(i, service) for i in plan.instances() if service in i.upstream_ports]


# --------------------------------------------------------------------------- healthy again


@dataclass(frozen=True)
class MeshHealth:
    not_passing: list[str]  # registrations (instances, sidecars) Consul does not pass
    not_live: list[str]  # sidecars whose Envoy is not LIVE
    ejected: list[str]  # "caller -> upstream host" pairs outlier detection has ejected
    faults: list[str]  # payment instances with a fault still set

    @property
    def healthy(self) -> bool:
        return not (self.not_passing or self.not_live or self.ejected or self.faults)

    def __str__(self) -> str:
        parts = [
            f"{label}: {', '.join(items)}"
            for label, items in (("not passing", self.not_passing), ("not LIVE", self.not_live),
                                 ("ejected", self.ejected), ("fault set", self.faults))
            if items
        ]
        return "; ".join(parts) or "healthy"


async def mesh_health(plan: MeshPlan) -> MeshHealth:
    def read() -> tuple[list[str], list[str], list[str]]:
        checks, _ = control.check_states(plan)
        not_passing, not_live, ejected = [], [], []
        for inst in plan.instances():
            for sid in (inst.instance_id, inst.sidecar_id):
                if checks.get(sid) != "passing":
                    not_passing.append(f"{sid}={checks.get(sid, 'missing')}")
            if envoy.ready(inst.admin_url) != "LIVE":
                not_live.append(inst.sidecar_id)
                continue
            for upstream in inst.upstream_ports:
                for host in envoy.hosts(inst.admin_url, upstream):
                    if host.ejected:
                        ejected.append(f"{inst.instance_id} -> {upstream} {host.address}")
        return not_passing, not_live, ejected

    not_passing, not_live, ejected = await asyncio.to_thread(read)
    faults = [i for i, f in (await payment_faults(plan)).items() if f != (0.0, 0)]
    return MeshHealth(not_passing, not_live, ejected, faults)


async def restore(plan: MeshPlan, within: float = 90) -> float:
    """Bring the mesh back to healthy after a scenario: payment's faults off, then wait
    until every instance and sidecar passes, every Envoy is LIVE and no caller has an
    instance ejected (an ejection lasts 10 s x the instance's ejection count). Returns the
    seconds it took; raises ChaosError with what is still wrong."""
    started = time.monotonic()
    try:
        await set_payment_fault(plan)
    except grpc.aio.AioRpcError:
        pass  # a payment instance restarting: it comes back without a fault anyway
    last = MeshHealth([], [], [], [])

    async def ok() -> bool:
        nonlocal last
        last = await mesh_health(plan)
        return last.healthy

    try:
        await until(ok, within, "the mesh to be healthy", step=0.5, not_yet=NOT_ANSWERING)
    except TimedOut:
        raise ChaosError(f"mesh not healthy after {within:.0f}s: {last}") from None
    return time.monotonic() - started
