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
from pathlib import Path
from typing import Any

from services.kit.registration import service_registration
from tools.mesh.cli import exec_binary, mesh_parser, plan_of
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
        return self.plan.run_dir / "nats"

    @property
    def instance(self) -> Instance:
        s = self.settings
        mesh_index = int(ipaddress.IPv4Address(self.plan.address)) & 0xFF
        return Instance(
            service=SERVICE_NAME,
            number=1,
            port=s.port,
            address=self.address,
            sidecar_port=s.sidecar_port,
            admin_port=s.sidecar_admin_port,
            metrics_port=s.sidecar_metrics_port,
            # Services use mesh_index * 1000 + 0..99 and the edge 999; NATS's sidecar 998.
            base_id=mesh_index * 1000 + 998,
        )

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
        return {"MESHMART_UPSTREAM_NATS": target, "MESHMART_NATS_URL": f"nats://{target}"}

    def edges(self) -> set[tuple[str, str]]:
        """(client, nats) pairs the intentions must allow."""
        return {(client, SERVICE_NAME) for client in self.clients}

    # --- processes ----------------------------------------------------------------
    def server_command(self) -> list[str]:
        s = self.settings
        return [
            str(self.plan.bin / "nats-server"),
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--addr", self.address,
            "--port", str(s.port),
            # Monitoring binds the same (loopback) address: /healthz, /varz, /jsz.
            "--http_port", str(s.monitor_port),
            "--server_name", "meshmart",
        ]

    def programs(self) -> list[Program]:
        if not self.runs:
            return []
        # Right after Consul: services connect whenever it is up (they retry). On SIGTERM
        # nats-server stops gracefully (JetStream flushes its store).
        return wrapper_programs(self.plan, self.instance, "tools.mesh.nats", "infra",
                                priority=20, autostart=True, stop_wait=15)

    # --- Consul -------------------------------------------------------------------
    def registration(self) -> dict[str, Any]:
        """The agent API body registering nats-1 with its sidecar (the kit's builder)."""
        inst = self.instance
        return service_registration(
            name=SERVICE_NAME,
            instance_id=INSTANCE_ID,
            address=self.address,
            port=self.settings.port,
            version=source_version(self.plan.root),
            tags=["nats", "jetstream"],
            # Passing only once JetStream is enabled and its store is recovered.
            check={"Name": "nats JetStream healthz",
                   "HTTP": f"{self.monitor_url}/healthz?js-enabled-only=true"},
            sidecar_port=inst.sidecar_port,
            meta={"monitor": self.monitor_url},
            # Prometheus finds the sidecar's listener through its meta (observability.py).
            sidecar_metrics_addr=f"{self.address}:{inst.metrics_port}",
            # Under docker compose a one-shot container registers NATS once
            # (tools/compose/nats.py): nothing would write it again.
            deregister_critical=False,
        )

    def register(self, timeout: float = 30.0) -> None:
        """Register with the local agent (retried while it is not up yet)."""
        try:
            register_service(self.plan.consul_url, self.registration(), timeout,
                             self.plan.token_file(SERVICE_NAME))
        except HTTPFailure as failure:
            raise NatsError(f"could not register {INSTANCE_ID}: {failure}") from None

    # --- readiness ----------------------------------------------------------------
    def state(self) -> dict[str, str]:
        return connect_health(self.plan, self.instance)

    def wait_ready(self, deadline: float) -> list[str]:
        """Until Consul passes nats-1 (JetStream up) and its sidecar, and Envoy is LIVE."""
        if not self.runs:
            return []
        want = {"health": "passing", "sidecar": "LIVE", "sidecar_health": "passing"}
        wait_for_state(self.state, want, deadline, lambda state: NatsError(
            f"NATS not ready before the deadline: {state}; see {self.plan.logs_dir}/"
            f"{INSTANCE_ID}.log and {INSTANCE_ID}-sidecar.log"
        ))
        return []

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
            health = self.state()
        except HTTPFailure as failure:
            return f"NATS at {self.monitor_url} does not answer ({failure})"
        head = (
            f"NATS {INSTANCE_ID} {self.address}:{self.settings.port}  health={health['health']}  "
            f"sidecar={health['sidecar']} {self.address}:{self.settings.sidecar_port} "
            f"({health['sidecar_health']})  monitoring {self.monitor_url}"
        )
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
    args = mesh_parser("python -m tools.mesh.nats", __doc__, ["run", "status"]).parse_args(argv)
    try:
        bus = Nats(plan_of(args))
        if args.command == "status":
            sys.stdout.write(bus.render_status() + "\n")
            return 0
        bus.store_dir.mkdir(parents=True, exist_ok=True)
        bus.register()
        exec_binary(f"nats: {bus.url} registered as {INSTANCE_ID}", bus.server_command())
    except (NatsError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
