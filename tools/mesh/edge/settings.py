"""topology.toml ``[edge]``: the edge gateway's ports and browser origins, and its place in
the mesh (an instance "edge-1" of a Connect service "edge" with its own sidecar).

The edge's sidecar has one local listener per public service it calls, at
``upstream_port_base + slot`` (catalog, slot 1 -> 31001): the edge Envoy sends every
call there, so edge -> service is mTLS and subject to intentions like any other call.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from tools.mesh.topology import Instance, Topology

SERVICE_NAME = "edge"
INSTANCE_ID = "edge-1"


@dataclass(frozen=True)
class EdgeSettings:
    port: int = 8080  # REST/JSON (HTTP/1.1 and h2c) and native gRPC, one listener
    admin_port: int = 9901  # the edge Envoy's admin (/ready, /stats, /config_dump)
    sidecar_port: int = 21000  # the edge sidecar's public listener (nobody dials the edge)
    sidecar_admin_port: int = 19000
    sidecar_metrics_port: int = 20000
    upstream_port_base: int = 31000  # + the callee's slot: the sidecar's local listeners
    cors_origins: tuple[str, ...] = ("http://localhost:5173",)
    max_request_bytes: int = 65536  # larger bodies get 413 before any service sees them
    # Envoy worker threads of the edge Envoy (0: one per core).
    concurrency: int = 2


def edge_instance(
    topology: Topology, settings: EdgeSettings, callees: Iterable[str], address: str
) -> Instance:
    """The edge as a mesh instance: what tools.mesh needs to run and check its sidecar."""
    mesh_index = int(ipaddress.IPv4Address(address)) & 0xFF
    ups = {
        name: settings.upstream_port_base + topology.services[name].slot
        for name in sorted(callees)
    }
    return Instance(
        service=SERVICE_NAME,
        number=1,
        port=settings.port,
        address=address,
        sidecar_port=settings.sidecar_port,
        admin_port=settings.sidecar_admin_port,
        metrics_port=settings.sidecar_metrics_port,
        # Services use mesh_index * 1000 + 0..99; the edge's sidecar takes 999.
        base_id=mesh_index * 1000 + 999,
        upstream_ports=ups,
    )
