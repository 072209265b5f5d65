"""A mesh for a test, and reading a running mesh, the same way for the mesh tests and the
chaos scenarios: ``running`` brings a plan's mesh up for a block and checks that nothing
of it is left after; then Consul's check state of a registration, a sidecar's counters,
whether every JetStream consumer has caught up, and the pid supervisord runs a program
under. Each is one small
synchronous HTTP (or XML-RPC) request (run it in a worker thread, ``until(...,
in_thread=True)``, while load runs on the event loop)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tools.mesh import control, envoy
from tools.mesh.control import check_states
from tools.mesh.nats import Nats
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import Instance


@contextmanager
def running(plan: MeshPlan, *, timeout: float = 240, check_entries: bool = True) -> Iterator[None]:
    """``plan``'s mesh up for the block (the code path of `make up`); then down, and no
    process, namespace or link of it left. ``check_entries=False`` for a smaller topology
    than consul/config-entries describes."""
    try:
        # Progress goes to stdout: pytest shows it when setup fails.
        control.up(plan, timeout=timeout, out=sys.stdout, check_entries=check_entries)
        yield
    finally:
        try:
            control.down(plan, timeout=90, out=sys.stdout)
        finally:
            left = control.mesh_pids(plan.run_dir)
            assert not left, f"mesh processes left after teardown: {left}"
            if plan.pods:
                pods = plan.pod_network.leftovers(list(plan.pod_addresses()))
                assert not pods, f"namespaces or links left after teardown: {pods}"


def health_of(plan: MeshPlan, service_id: str) -> str:
    """Consul's worst check state of a registration: passing / warning / critical /
    missing (not registered)."""
    checks, _ = check_states(plan)
    return checks.get(service_id, "missing")


def pid_of(plan: MeshPlan, name: str) -> int:
    """The pid supervisord has for program ``name`` ("catalog-1" or "services:catalog-1";
    0 while it is not running)."""
    for proc in Supervisor(plan).processes():
        if name in (proc["name"], f"{proc['group']}:{proc['name']}"):
            return int(proc["pid"])
    raise KeyError(f"supervisord has no program {name!r}")


def upstream_counter(caller: Instance, upstream: str, suffix: str) -> int:
    """A counter of ``caller``'s upstream cluster(s) for ``upstream`` (subsets summed),
    e.g. upstream_rq_retry."""
    return envoy.upstream_stat(caller.admin_url, upstream, suffix)


def _counter(callee: Instance, name: str) -> int:
    return envoy.stats(callee.admin_url, f"^{name.replace('.', '[.]')}$").get(name, 0)


def listener_counter(callee: Instance, suffix: str) -> int:
    """A counter of the callee sidecar's public (mTLS) listener, e.g. ssl.handshake."""
    return _counter(callee, f"listener.{callee.address}_{callee.sidecar_port}.{suffix}")


def public_http_counter(callee: Instance, suffix: str) -> int:
    """A counter of the callee sidecar's public HTTP connection manager, e.g. rbac.denied
    (calls an intention refused)."""
    return _counter(callee, f"http.public_listener.{suffix}")


def consumers_idle(plan: MeshPlan) -> bool:
    """Every durable JetStream consumer has delivered, and got an ack for, everything."""
    jsz = Nats(plan).jsz()
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            for consumer in stream.get("consumer_detail") or []:
                if consumer.get("num_pending") or consumer.get("num_ack_pending"):
                    return False
    return True
