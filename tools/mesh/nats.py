"""NATS JetStream in a mesh run: its program, its Consul registration, its clients'
upstreams, readiness, and the event flow for `make status`.

NATS is a Connect service "nats" (instance "nats-1") like any other: its process is
nats-server, so ``python -m tools.mesh.nats run`` does what the kit does for a Python
service (register nats-1 with its sidecar and a health check, then exec the server).
Its sidecar runs like every other one. Every client service (topology.toml
[nats] clients) gets a Connect upstream "nats" on its own sidecar, at
``client_port_base + (gRPC port - port_block)`` on the mesh address, and its
MESHMART_NATS_URL points there: publishes and consumer pulls cross both sidecars over
mTLS, and consul/config-entries/nats/ (protocol tcp, one intention per client) decides
who may reach the broker at all.

    python -m tools.mesh.nats run [--address A] [--run-dir R]   what supervisord runs
    python -m tools.mesh.nats status [--address A]              streams and consumers
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from services.kit.registration import service_registration
from tools.mesh import envoy
from tools.mesh.cli import exec_binary, mesh_parser, plan_of, run_args
from tools.mesh.component import Component
from tools.mesh.connect import connect_health, wrapper_programs
from tools.mesh.health import wait_for_state
from tools.mesh.http import HTTPFailure, get_json, register_service
from tools.mesh.plan import MeshPlan, Program
from tools.mesh.table import render_table
from tools.mesh.topology import Instance, TopologyError, load_table
from tools.mesh.version import source_version

SERVICE_NAME = "nats"
INSTANCE_ID = "nats-1"


class NatsError(Exception):
    """NATS could not be registered or made ready."""


@dataclass(frozen=True)
class NatsSettings:
    """topology.toml [nats]."""

    port: int = 4222  # client port on the mesh address (only its sidecar dials it)
    monitor_port: int = 8222  # HTTP monitoring: /healthz, /jsz (make status)
    sidecar_port: int = 21222  # its sidecar's public (mTLS) listener
    sidecar_admin_port: int = 19222
    sidecar_metrics_port: int = 20222
    client_port_base: int = 22000  # + (client's gRPC port - port_block)
    cluster_port: int = 6222  # the routes between the nodes of a cluster (more hosts)
    clients: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Nats(Component):
    plan: MeshPlan

    @property
    def settings(self) -> NatsSettings:
        """topology.toml [nats], read when asked (a test may rewrite the file)."""
        return load_table(self.plan.topology.source, "nats", NatsSettings)

    @property
    def clients(self) -> list[str]:
        """Client services this plan runs (a partial mesh may run none)."""
        present = set(self.plan.present_services())
        return [c for c in self.settings.clients if c in present]

    @property
    def runs(self) -> bool:
        return bool(self.clients)

    @property
    def address(self) -> str:
        """The mesh's address (under compose, the NATS pod's; with pods, the host side of
        their bridge, where their sidecars reach it)."""
        return self.plan.shared_address

    @property
    def url(self) -> str:
        return f"nats://{self.address}:{self.settings.port}"

    @property
    def monitor_url(self) -> str:
        """nats-server's HTTP monitoring: /healthz, /varz, /jsz."""
        return f"http://{self.address}:{self.settings.monitor_port}"

    @property
    def store_dir(self) -> Path:
        """JetStream's store: streams, consumers and their acks survive a restart."""
        return self.store_dir_of(1)

    def store_dir_of(self, node: int) -> Path:
        return self.plan.run_dir / "nats" if node == 1 else self.plan.run_dir / f"nats-{node}"

    @property
    def nodes(self) -> int:
        """NATS servers: one, or on more hosts one per Consul server host (up to three), a
        JetStream cluster whose streams keep a copy on each (tools/mesh/hosts.py)."""
        if self.plan.pods and self.plan.host_count > 1:
            return min(self.plan.host_count, 3)
        return 1

    @property
    def instance(self) -> Instance:
        return self.node_instance(1)

    def node_instance(self, node: int) -> Instance:
        """Node ``node`` (1-based) as a Connect instance "nats-<node>": node 1 on the
        mesh's shared address, node k > 1 in host k's namespace at its address."""
        s = self.settings
        mesh_index = int(ipaddress.IPv4Address(self.plan.address)) & 0xFF
        return Instance(
            service=SERVICE_NAME,
            number=node,
            port=s.port,
            address=self.address if node == 1 else self.plan.host_address(node),
            sidecar_port=s.sidecar_port,
            admin_port=s.sidecar_admin_port,
            metrics_port=s.sidecar_metrics_port,
            # Services use mesh_index * 1000 + 0..99 and the edge 999; NATS's sidecar 998
            # (the cluster's others 990 + node).
            base_id=mesh_index * 1000 + (998 if node == 1 else 990 + node),
            host=node,
        )

    def node_instances(self) -> list[Instance]:
        return [self.node_instance(n) for n in range(1, self.nodes + 1)]

    def monitor_url_of(self, node: int) -> str:
        return f"http://{self.node_instance(node).address}:{self.settings.monitor_port}"

    # --- clients ------------------------------------------------------------------
    def client_port(self, inst: Instance) -> int:
        rules = self.plan.topology.rules
        return self.settings.client_port_base + (inst.port - rules.port_block)

    def service_env(self, inst: Instance) -> dict[str, str]:
        """What a client instance needs: its sidecar's listener for "nats" (which the kit
        registers as a Connect upstream) and the URL the service connects to."""
        if not self.runs or inst.service not in self.settings.clients:
            return {}
        target = f"{inst.local_address}:{self.client_port(inst)}"
        env = {"MESHMART_UPSTREAM_NATS": target, "MESHMART_NATS_URL": f"nats://{target}"}
        if self.nodes > 1:
            # A copy of every stream on each node (services/kit/events/settings.py).
            env["MESHMART_NATS_REPLICAS"] = str(self.nodes)
        return env

    def edges(self) -> set[tuple[str, str]]:
        """(client, nats) pairs the intentions must allow."""
        return {(client, SERVICE_NAME) for client in self.clients}

    # --- processes ----------------------------------------------------------------
    def server_command(self, node: int = 1) -> list[str]:
        s = self.settings
        address = self.node_instance(node).address
        command = [
            str(self.plan.bin / "nats-server"),
            "--jetstream",
            "--store_dir", str(self.store_dir_of(node)),
            "--addr", address,
            "--port", str(s.port),
            # Monitoring binds the same (loopback) address: /healthz, /varz, /jsz.
            "--http_port", str(s.monitor_port),
            "--server_name", "meshmart" if node == 1 else f"meshmart-{node}",
        ]
        if self.nodes > 1:
            routes = ",".join(f"nats://{i.address}:{s.cluster_port}"
                              for i in self.node_instances() if i.number != node)
            command += [
                "--cluster_name", "meshmart",
                "--cluster", f"nats://{address}:{s.cluster_port}",
                "--routes", routes,
                # Clients reach the cluster only through their sidecars: no node tells
                # them the others' own addresses, which would walk around the mesh.
                "--no_advertise",
            ]
        return command

    def programs(self) -> list[Program]:
        if not self.runs:
            return []
        # Right after Consul: services connect whenever it is up (they retry). On SIGTERM
        # nats-server stops gracefully (JetStream flushes its store).
        result = wrapper_programs(self.plan, self.instance, "tools.mesh.nats", "infra",
                                  priority=20, autostart=True, stop_wait=15)
        for inst in self.node_instances()[1:]:
            # Node k in host k's namespace, registered with host k's agent.
            command = [self.plan.python, "-m", "tools.mesh.nats", "run", *run_args(self.plan),
                       "--node", str(inst.number)]
            result.append(self.plan.program(
                inst.instance_id, "infra", self.plan.in_pod(inst, command),
                priority=20, autostart=True, stop_signal="TERM", stop_wait=15))
            result.append(self.plan.sidecar_program(inst))
        return result

    # --- Consul -------------------------------------------------------------------
    def registration(self, node: int = 1) -> dict[str, Any]:
        """The agent API body registering nats-<node> with its sidecar (the kit's builder)."""
        inst = self.node_instance(node)
        monitor = self.monitor_url_of(node)
        return service_registration(
            name=SERVICE_NAME,
            instance_id=inst.instance_id,
            address=inst.address,
            port=self.settings.port,
            version=source_version(self.plan.root),
            tags=["nats", "jetstream"],
            # Passing only once JetStream is enabled and its store is recovered.
            check={"Name": "nats JetStream healthz",
                   "HTTP": f"{monitor}/healthz?js-enabled-only=true"},
            sidecar_port=inst.sidecar_port,
            meta={"monitor": monitor},
            # Prometheus finds the sidecar's listener through its meta (observability.py).
            sidecar_metrics_addr=f"{inst.address}:{inst.metrics_port}",
            # Under docker compose a one-shot container registers NATS once
            # (tools/compose/nats.py): nothing would write it again.
            deregister_critical=False,
        )

    def register(self, timeout: float = 30.0, node: int = 1) -> None:
        """Register with its host's agent (retried while it is not up yet)."""
        inst = self.node_instance(node)
        url = self.plan.consul_url if node == 1 else f"http://{self.plan.consul_http_of(inst)}"
        try:
            register_service(url, self.registration(node), timeout,
                             self.plan.token_file(SERVICE_NAME))
        except HTTPFailure as failure:
            raise NatsError(f"could not register {inst.instance_id}: {failure}") from None

    # --- readiness ----------------------------------------------------------------
    def state(self, node: int = 1) -> dict[str, str]:
        """nats-<node>'s own check and its sidecar's (with one node, the service's)."""
        if self.nodes == 1:
            return connect_health(self.plan, self.instance)
        from tools.mesh.control.state import check_states  # (control imports this module)

        inst = self.node_instance(node)
        checks, _ = check_states(self.plan)
        return {"health": checks.get(inst.instance_id, "missing"),
                "sidecar": envoy.ready(inst.admin_url),
                "sidecar_health": checks.get(inst.sidecar_id, "missing")}

    def wait_ready(self, deadline: float) -> list[str]:
        """Until Consul passes every node (JetStream up) and its sidecar, and each Envoy
        is LIVE."""
        if not self.runs:
            return []
        want = {"health": "passing", "sidecar": "LIVE", "sidecar_health": "passing"}
        for node in range(1, self.nodes + 1):
            wait_for_state(partial(self.state, node), want, deadline, lambda state: NatsError(
                f"NATS not ready before the deadline: {state}; see {self.plan.logs_dir}/"
                f"nats-*.log and nats-*-sidecar.log"
            ))
        return []

    def cluster_whole(self) -> bool:
        """Every node answers and follows one meta leader, which sees every other node
        current: the cluster can place a stream or consumer on all of them again (a
        node that is back needs a moment to catch up). Only the leader tracks the others;
        a follower lists the leader among its peers, and the other followers as not
        current."""
        metas = []
        for node in range(1, self.nodes + 1):
            body = get_json(f"{self.monitor_url_of(node)}/jsz", timeout=3)
            metas.append((body if isinstance(body, dict) else {}).get("meta_cluster") or {})
        leaders = {meta.get("leader") for meta in metas}
        if len(leaders) != 1 or None in leaders:
            return False
        for meta in metas:
            peers = meta.get("replicas") or []  # the other nodes, as this one sees them
            if all(peer.get("name") not in leaders for peer in peers):  # the leader's view
                return len(peers) == self.nodes - 1 and all(
                    peer.get("current") and not peer.get("offline") for peer in peers)
        return False

    # --- status -------------------------------------------------------------------
    def jsz(self) -> dict[str, Any]:
        body = get_json(f"{self.monitor_url}/jsz?streams=true&consumers=true", timeout=3)
        return body if isinstance(body, dict) else {}

    def render_status(self) -> str:
        """Streams (messages) and durable consumers (pending, waiting for an ack)."""
        if not self.runs:
            return ""
        try:
            jsz = self.jsz()
            heads = []
            for inst in self.node_instances():
                health = self.state(inst.number)
                monitor = self.monitor_url_of(inst.number)
                heads.append(
                    f"NATS {inst.instance_id} {inst.address}:{self.settings.port}  "
                    f"health={health['health']}  sidecar={health['sidecar']} "
                    f"{inst.address}:{self.settings.sidecar_port} "
                    f"({health['sidecar_health']})  monitoring {monitor}"
                )
        except HTTPFailure as failure:
            return f"NATS at {self.monitor_url} does not answer ({failure})"
        if self.nodes > 1:
            meta = jsz.get("meta_cluster") or {}
            heads.append(f"JetStream cluster of {meta.get('cluster_size', '?')}, meta leader "
                         f"{meta.get('leader', '-')}; every stream kept on {self.nodes} nodes")
        head = "\n".join(heads)
        streams, consumers = [], []
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                state = stream.get("state") or {}
                streams.append([
                    stream["name"], str(state.get("messages", 0)), str(state.get("bytes", 0)),
                    str(state.get("last_seq", 0)), str(state.get("consumer_count", 0)),
                ])
                for consumer in stream.get("consumer_detail") or []:
                    consumers.append([
                        stream["name"], consumer["name"],
                        str(consumer.get("num_pending", 0)),
                        str(consumer.get("num_ack_pending", 0)),
                        str(consumer.get("num_redelivered", 0)),
                        str((consumer.get("ack_floor") or {}).get("stream_seq", 0)),
                    ])
        parts = [head]
        if streams:
            parts.append(render_table(["stream", "messages", "bytes", "last seq", "consumers"],
                                sorted(streams)))
        if consumers:
            parts.append(render_table(
                ["stream", "consumer", "pending", "ack pending", "redelivered", "acked up to"],
                sorted(consumers),
            ))
        if not streams:
            parts.append("(no stream yet: services create theirs when they connect)")
        return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = mesh_parser("python -m tools.mesh.nats", __doc__, ["run", "status"])
    parser.add_argument("--node", type=int, default=1, help="which node of a cluster")
    args = parser.parse_args(argv)
    try:
        bus = Nats(plan_of(args))
        if args.command == "status":
            sys.stdout.write(bus.render_status() + "\n")
            return 0
        bus.store_dir_of(args.node).mkdir(parents=True, exist_ok=True)
        bus.register(node=args.node)
        inst = bus.node_instance(args.node)
        exec_binary(f"nats: {inst.address}:{inst.port} registered as {inst.instance_id}",
                    bus.server_command(args.node))
    except (NatsError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
