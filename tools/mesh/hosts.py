"""Hosts: a mesh on more than one (simulated) machine (topology.toml [hosts] count,
`make up HOSTS=3`, ``MeshPlan(hosts=3)``), each with its own Consul agent.

Host 1 is the machine itself, as with one host: its agent binds the pods' bridge on the
host side (and answers on the loopback), and the edge (still 127.0.0.1:8080), the
operator, NATS, Prometheus and Zipkin stay there. Host k > 1 is a network namespace on
the same bridge (``MeshPlan.host_pods``, made with the pods: ``mmX-hostk`` at
10.213.X.(238 + k)) running host k's agent. Every host's instances are pods on the
bridge, placed by ``topology.host_of`` (a service's instances go round the hosts);
each registers with its own host's agent and its sidecar takes xDS from it
(``MeshPlan.consul_http_of``, ``consul_grpc_of``).

The first three hosts run Consul servers (raft, ``bootstrap_expect`` = their number)
and every agent joins the others (``-retry-join``); with more hosts the rest are
clients. Each agent has its own node name ("meshmart" for host 1, as with one host;
"meshmart-hostk") and, with ACLs, its own agent token (tools/mesh/acl.py).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

from tools.mesh.component import Component
from tools.mesh.http import HTTPFailure, get_json
from tools.mesh.plan import MeshPlan, Program
from tools.mesh.pods import PodError, ip
from tools.mesh.table import render_table

# Consul servers among the hosts: three tolerate losing one.
MAX_SERVERS = 3


def node_name(host: int) -> str:
    """The agent's Consul node name (host 1 keeps the one-host mesh's, consul/agent.hcl)."""
    return "meshmart" if host == 1 else f"meshmart-host{host}"


def servers(plan: MeshPlan) -> int:
    return min(plan.host_count, MAX_SERVERS)


def cluster_args(plan: MeshPlan, host: int) -> list[str]:
    """Host ``host``'s agent's part of the cluster: its node name, server or client, how
    many servers to wait for, and whom to join (none with one host: agent.hcl's own
    single server stands)."""
    if plan.host_count == 1:
        return []
    others = [plan.host_address(h) for h in range(1, plan.host_count + 1) if h != host]
    args = ["-node", node_name(host), *(arg for a in others for arg in ("-retry-join", a))]
    if host <= servers(plan):
        return [*args, "-bootstrap-expect", str(servers(plan))]
    return [*args, "-server=false"]


def agent_programs(plan: MeshPlan, acl_args: list[str]) -> list[Program]:
    """The agents of hosts 2..: each in its host's namespace, bound to its address."""
    result = []
    for host in range(2, plan.host_count + 1):
        address = plan.host_address(host)
        command = [
            str(plan.bin / "consul"), "agent",
            "-config-file", str(plan.root / "consul" / "agent.hcl"),
            "-data-dir", str(plan.consul_data_dir_of(host)),
            "-bind", address, "-client", address, "-advertise", address,
            *cluster_args(plan, host), *acl_args,
        ]  # fmt: skip
        result.append(plan.program(
            f"consul-host{host}", "infra",
            [*plan.pod_network.exec_prefix(f"host{host}"), *command],
            priority=10, autostart=True, stop_signal="INT", stop_wait=15,
        ))
    return result


def host_programs(plan: MeshPlan, host: int) -> list[str]:
    """Every supervisord program ("group:name") that runs on host ``host`` > 1: its agent,
    its instances and their sidecars, its NATS node and that node's sidecar (what losing
    the machine loses)."""
    from tools.mesh.nats import Nats  # (nats imports the plan; hosts is imported by acl)

    if host == 1:
        raise ValueError("host 1 is this machine: its programs are the mesh's own")
    names = [f"infra:consul-host{host}"]
    for inst in plan.instances():
        if inst.host == host:
            names += [f"services:{inst.instance_id}", f"sidecars:{inst.instance_id}-sidecar"]
    bus = Nats(plan)
    if bus.runs and host <= bus.nodes:
        names += [f"infra:nats-{host}", f"sidecars:nats-{host}-sidecar"]
    return names


def host_namespaces(plan: MeshPlan, host: int) -> list[str]:
    """The network namespaces of host ``host`` > 1: its own (its agent, its NATS node)
    and its instances' pods."""
    if host == 1:
        raise ValueError("host 1 is this machine: it has no namespace of its own")
    pods = [f"host{host}", *(i.instance_id for i in plan.instances() if i.host == host)]
    return [plan.pod_network.namespace(pod) for pod in pods]


# Every packet in or out of a namespace except on its own loopback.
_CUT = (("INPUT", "-i"), ("OUTPUT", "-o"))


@contextlib.contextmanager
def partitioned(plan: MeshPlan, host: int) -> Iterator[list[str]]:
    """Host ``host`` cut off from the network while the block runs, and healed after: in
    each of its namespaces, iptables drops every packet in or out except on the
    namespace's own loopback, so its processes keep running and talking to themselves
    while the other hosts hear silence (a pulled cable, not a dead machine: nothing
    resets a connection). Yields the namespaces."""
    iptables = shutil.which("iptables")
    if iptables is None:
        raise PodError("a partition needs iptables (apt-get install iptables)")
    namespaces = host_namespaces(plan, host)

    def rules(action: str, ns: str, check: bool) -> None:
        for chain, side in _CUT:
            ip("netns", "exec", ns, iptables, action, chain, "!", side, "lo", "-j", "DROP",
               check=check)

    try:
        for ns in namespaces:
            rules("-I", ns, check=True)
        yield namespaces
    finally:
        for ns in namespaces:
            rules("-D", ns, check=False)


def agent_urls(plan: MeshPlan) -> dict[int, str]:
    """host -> the HTTP API of its agent, as the machine reaches it."""
    port = plan.topology.rules.consul_http_port
    urls = {1: plan.consul_url}
    urls.update({h: f"http://{plan.host_address(h)}:{port}"
                 for h in range(2, plan.host_count + 1)})
    return urls


@dataclass(frozen=True)
class RaftServer:
    node: str
    address: str
    leader: bool
    voter: bool


def raft_servers(plan: MeshPlan, url: str | None = None) -> list[RaftServer]:
    """The raft configuration as the agent at ``url`` (host 1's) sees it."""
    body = get_json(f"{url or plan.consul_url}/v1/operator/raft/configuration",
                    timeout=3, token=plan.consul_token)
    return [RaftServer(s["Node"], s["Address"], bool(s["Leader"]), bool(s["Voter"]))
            for s in body.get("Servers") or []]


def leader(plan: MeshPlan, url: str | None = None) -> str:
    """host:port (server RPC) of the raft leader as the agent at ``url`` knows it, ""
    while there is none."""
    answer = get_json(f"{url or plan.consul_url}/v1/status/leader", timeout=2,
                      token=plan.consul_token)
    return str(answer or "")


def host_of_address(plan: MeshPlan, address: str) -> int | None:
    """The host whose agent advertises ``address`` (host:port or a bare address)."""
    bare = address.rpartition(":")[0] or address
    for host in range(1, plan.host_count + 1):
        if plan.host_address(host) == bare:
            return host
    return None


@dataclass(frozen=True)
class Hosts(Component):
    """`make status`'s block of the hosts: each one's agent, raft role and instances."""

    plan: MeshPlan

    def render_status(self) -> str:
        if not self.plan.pods or self.plan.host_count == 1:
            return ""
        try:
            raft = {s.address.rpartition(":")[0]: s for s in raft_servers(self.plan)}
        except HTTPFailure as failure:
            return f"hosts: Consul does not answer the raft configuration ({failure})"
        placed: dict[int, list[str]] = {}
        for inst in self.plan.instances():
            placed.setdefault(inst.host, []).append(inst.instance_id)
        rows = []
        for host in range(1, self.plan.host_count + 1):
            address = self.plan.host_address(host)
            server = raft.get(address)
            role = "client" if server is None else ("LEADER" if server.leader else "follower")
            netns = self.plan.pod_network.namespace(f"host{host}")
            where = "this machine" if host == 1 else f"netns {netns}"
            rows.append([str(host), node_name(host), f"{address} ({where})", role,
                         " ".join(placed.get(host, []))])
        return render_table(["host", "consul node", "agent", "raft", "instances"], rows)
