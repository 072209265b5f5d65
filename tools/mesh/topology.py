"""topology.toml -> every instance of the mesh with all its derived ports.

topology.toml is the single source: services, instance counts, gRPC ports and upstreams
come from its ``[services.<name>]`` tables, and everything the mesh needs per instance
(sidecar listener, Envoy admin and metrics ports, one local listener per upstream) is
derived from the instance's gRPC port by the rules in its ``[mesh]`` table. Nothing here
talks to a process; it is pure data, so the rules are unit-tested alone.

A service may also run a *canary*: another release of the same contract (e.g. v2 in Go),
registered under the same service name with its own meta.version, so that Consul's
service-resolver subsets and service-splitter can divide the traffic between releases.
Its instances are numbered after the service's own ones (recommendation-3 listens on
7182), so every derived port follows the same rules. They are returned by
``canary_instances``, not by ``instances``: not every consumer of the topology can run
them (the container image, for one, holds the Python services only).

A whole mesh also has an *address*: every process of it (Consul, services, Envoys) binds
that loopback address. The developer's mesh uses 127.0.0.1; the mesh tests use another
loopback address with the very same ports, so they never collide with a running mesh.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = ROOT / "topology.toml"


class TopologyError(Exception):
    """topology.toml is inconsistent; the message names the entry."""


@dataclass(frozen=True)
class MeshRules:
    """How an instance's mesh ports derive from its gRPC port P (see topology.toml)."""

    port_block: int = 7100  # every service port lies in [port_block, port_block + 100)
    sidecar_port_offset: int = 14000  # sidecar public (mTLS) listener: P + offset
    admin_port_offset: int = 12000  # sidecar Envoy admin: P + offset
    metrics_port_offset: int = 13000  # sidecar Prometheus /metrics: P + offset
    upstream_port_base: int = 30000  # see Instance.upstream_port
    consul_http_port: int = 8500
    consul_grpc_port: int = 8502  # plaintext xDS (the TLS port is off)
    consul_dns_port: int = 8600
    consul_server_port: int = 8300
    consul_serf_lan_port: int = 8301
    consul_serf_wan_port: int = 8302
    envoy_concurrency: int = 1  # Envoy worker threads per sidecar (0: one per core)
    acl: bool = True  # Consul ACLs, default deny (tools/mesh/acl.py); `make up ACL=0`: off


# How an instance is started, by the language of its implementation:
#   python  python -m services.<service>            (services/<service>/__main__.py)
#   go      .venv/bin/<service>-go                  (services/<service>-go, built by setup)
LANGUAGES = ("python", "go")


@dataclass(frozen=True)
class Canary:
    """Another release of a service's contract, run beside it (``[services.X.canary]``)."""

    version: str  # its meta.version in Consul, the name of its resolver subset (e.g. "v2")
    language: str  # one of LANGUAGES
    instances: int


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    instances: int
    upstreams: tuple[str, ...]
    # meta.version of the service's own instances ("" = the commit the mesh runs from).
    version: str = ""
    canary: Canary | None = None
    # Passes on the end user of the request it serves to what it calls (asserts_users).
    asserts_users: bool = False

    @property
    def slot(self) -> int:
        """0-9: which block of ten ports the service owns (7140 -> 4)."""
        return (self.port % 100) // 10


@dataclass(frozen=True)
class Instance:
    service: str
    number: int  # 1-based; instance N listens on the service port + N - 1
    port: int
    address: str  # the mesh's loopback address
    sidecar_port: int
    admin_port: int
    metrics_port: int
    base_id: int
    # upstream service name -> local port of this instance's sidecar listener for it
    upstream_ports: Mapping[str, int] = field(default_factory=dict)
    version: str = ""  # meta.version to register ("" = the commit the mesh runs from)
    language: str = "python"  # how the instance is started (see LANGUAGES)
    # In a pod (tools/mesh/pods.py): ``address`` is the pod's, and the process and the
    # sidecar's upstream listeners bind the pod's own loopback, this. "" = ``address``.
    pod_loopback: str = ""
    # The (simulated) host it runs on, 1-based (topology.toml [hosts], ``host_of``).
    host: int = 1

    @property
    def local_address(self) -> str:
        """Where the process and the sidecar's upstream listeners bind."""
        return self.pod_loopback or self.address

    @property
    def instance_id(self) -> str:
        return f"{self.service}-{self.number}"

    @property
    def sidecar_id(self) -> str:
        # Consul's name for a sidecar registered through Connect.SidecarService.
        return f"{self.instance_id}-sidecar-proxy"

    @property
    def grpc_target(self) -> str:
        """host:port of the instance's own gRPC server (not through its sidecar)."""
        return f"{self.address}:{self.port}"

    def upstream_target(self, upstream: str) -> str:
        return f"{self.local_address}:{self.upstream_ports[upstream]}"

    @property
    def admin_url(self) -> str:
        """The sidecar's Envoy admin API: /ready, /stats, /clusters."""
        return f"http://{self.address}:{self.admin_port}"


@dataclass(frozen=True)
class Topology:
    services: Mapping[str, Service]
    rules: MeshRules
    source: Path

    def only(self, counts: Mapping[str, int]) -> Topology:
        """A smaller mesh of these services: just those of ``counts`` (name -> how many
        instances), each calling only its upstreams among them (a test's own mesh)."""
        return replace(self, services={
            name: replace(self.services[name], instances=count, upstreams=tuple(
                u for u in self.services[name].upstreams if u in counts))
            for name, count in counts.items()
        })

    def user_asserters(self, edge: str) -> frozenset[str]:
        """The mesh identities every service believes an x-meshmart-user-id from: the
        edge (``edge``, its Consul name: it verified the JWT) and the services marked
        ``asserts_users``."""
        return frozenset({edge, *(s.name for s in self.services.values() if s.asserts_users)})

    def callers_of(self, name: str) -> list[str]:
        return sorted(s.name for s in self.services.values() if name in s.upstreams)

    def edges(self) -> set[tuple[str, str]]:
        """(caller, callee) pairs of the call graph."""
        return {(s.name, u) for s in self.services.values() for u in s.upstreams}

    def instances(self, address: str = "127.0.0.1") -> list[Instance]:
        return [i for s in self.services.values() for i in self.instances_of(s.name, address)]

    def instances_of(self, name: str, address: str = "127.0.0.1") -> list[Instance]:
        service = self.services[name]
        return self._numbered(service, range(1, service.instances + 1), address)

    def canary_instances(self, address: str = "127.0.0.1") -> list[Instance]:
        """Every canary instance of the topology (see the module docstring)."""
        return [
            i for s in self.services.values() for i in self.canary_instances_of(s.name, address)
        ]

    def canary_instances_of(self, name: str, address: str = "127.0.0.1") -> list[Instance]:
        """The canary's instances, numbered after the service's own."""
        service = self.services[name]
        if service.canary is None:
            return []
        first = service.instances + 1
        return self._numbered(service, range(first, first + service.canary.instances), address)

    def _numbered(self, service: Service, numbers: range, address: str) -> list[Instance]:
        rules = self.rules
        canary = service.canary
        # Envoy's --base-id names its shared memory; Consul disables hot restart (so it is
        # not strictly needed) but distinct ids per mesh keep two meshes safe regardless.
        mesh_index = int(ipaddress.IPv4Address(address)) & 0xFF
        out = []
        for number in numbers:
            # Numbers past the service's own instances belong to its canary.
            version, language = service.version, "python"
            if canary is not None and number > service.instances:
                version, language = canary.version, canary.language
            port = service.port + number - 1
            ups = {
                u: rules.upstream_port_base
                + (port - rules.port_block) * 10
                + self.services[u].slot
                for u in service.upstreams
            }
            out.append(
                Instance(
                    service=service.name,
                    number=number,
                    port=port,
                    address=address,
                    sidecar_port=port + rules.sidecar_port_offset,
                    admin_port=port + rules.admin_port_offset,
                    metrics_port=port + rules.metrics_port_offset,
                    base_id=mesh_index * 1000 + (port - rules.port_block),
                    upstream_ports=ups,
                    version=version,
                    language=language,
                )
            )
        return out

    def instance(self, instance_id: str, address: str = "127.0.0.1") -> Instance:
        for inst in [*self.instances(address), *self.canary_instances(address)]:
            if inst.instance_id == instance_id:
                return inst
        raise TopologyError(f"no instance {instance_id!r} in {self.source}")

    def with_extra_upstreams(self, extra: Mapping[str, list[str]]) -> Topology:
        """A copy where service -> extra upstreams are added (tests: a caller identity
        with a listener to a service the call graph does not allow)."""
        services = dict(self.services)
        for name, more in extra.items():
            s = services[name]
            services[name] = replace(s, upstreams=(*s.upstreams, *more))
        topo = Topology(services=services, rules=self.rules, source=self.source)
        _check_ports(topo)
        return topo


@dataclass(frozen=True)
class HostsSettings:
    """topology.toml [hosts]: how many (simulated) hosts the mesh runs on."""

    count: int = 1


def host_of(service: Service, number: int, count: int) -> int:
    """The host (1-based) of instance ``number`` of ``service`` on ``count`` hosts: a
    service's instances go round the hosts one after the other, starting at a host that
    moves with the service's slot, so every service with two or more instances has them
    on different hosts and the services' first instances do not all land on host 1."""
    return (service.slot + number - 1) % count + 1


def read_services(path: Path) -> dict[str, Service]:
    """The ``[services.<name>]`` tables of a topology file, each parsed and its upstreams
    known, without the mesh's rules (`make run-local` runs any ports)."""
    with path.open("rb") as f:
        return _services(tomllib.load(f), path)


def load_topology(path: Path = TOPOLOGY_FILE) -> Topology:
    with path.open("rb") as f:
        raw = tomllib.load(f)
    rules = _rules(raw.get("mesh", {}), path)
    services = _services(raw, path)
    topo = Topology(services=services, rules=rules, source=path)
    for s in services.values():
        if not rules.port_block <= s.port < rules.port_block + 100 or s.port % 10:
            raise TopologyError(
                f"{path}: services.{s.name}.port = {s.port}: must be a multiple of 10 in "
                f"[{rules.port_block}, {rules.port_block + 100}) (the mesh port rules rely on it)"
            )
        if not 1 <= s.instances <= 10:
            raise TopologyError(f"{path}: services.{s.name}.instances must be 1-10")
        if s.canary is not None:
            _check_canary(s, path)
    _check_ports(topo)
    return topo


Settings = TypeVar("Settings")


def load_table(path: Path, table: str, settings: type[Settings]) -> Settings:
    """topology.toml's ``[table]`` as ``settings``, a dataclass whose fields are ints or
    tuples of strings (a TOML array); a key it has no field for is an error."""
    with path.open("rb") as f:
        raw = tomllib.load(f).get(table, {})
    unknown = set(raw) - {f.name for f in fields(settings)}  # type: ignore[arg-type]
    if unknown:
        raise TopologyError(f"{path}: [{table}] has unknown keys {sorted(unknown)}")
    values = {
        key: tuple(str(v) for v in value) if isinstance(value, list) else int(value)
        for key, value in raw.items()
    }
    return settings(**values)


def _services(raw: Mapping[str, Any], path: Path) -> dict[str, Service]:
    services: dict[str, Service] = {}
    for name, spec in raw.get("services", {}).items():
        try:
            services[name] = Service(
                name=name,
                port=int(spec["port"]),
                instances=int(spec.get("instances", 1)),
                upstreams=tuple(str(u) for u in spec.get("upstreams", [])),
                version=str(spec.get("version", "")),
                canary=_canary(spec["canary"]) if "canary" in spec else None,
                asserts_users=bool(spec.get("asserts_users", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TopologyError(f"{path}: services.{name}: bad entry ({exc!r})") from exc
    for s in services.values():
        for u in s.upstreams:
            if u not in services:
                raise TopologyError(f"{path}: services.{s.name} names unknown upstream {u!r}")
    return services


def _canary(raw: Mapping[str, Any]) -> Canary:
    return Canary(
        version=str(raw["version"]),
        language=str(raw.get("language", "python")),
        instances=int(raw.get("instances", 1)),
    )


def _check_canary(s: Service, path: Path) -> None:
    assert s.canary is not None
    where = f"{path}: services.{s.name}.canary"
    if s.canary.language not in LANGUAGES:
        raise TopologyError(f"{where}.language must be one of {', '.join(LANGUAGES)}")
    if not s.canary.version or s.canary.version == s.version:
        raise TopologyError(f"{where}.version must be set and differ from the service's version")
    if s.canary.instances < 1 or s.instances + s.canary.instances > 10:
        # A service owns a block of ten ports: its instances and its canary's share it.
        raise TopologyError(f"{where}.instances: at least 1, and at most 10 with the service's")


def _rules(raw: Mapping[str, Any], path: Path) -> MeshRules:
    known = set(MeshRules.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise TopologyError(f"{path}: [mesh] has unknown keys {sorted(unknown)}")
    ints = {k: int(v) for k, v in raw.items() if k != "acl"}
    acl = raw.get("acl", MeshRules.acl)
    if not isinstance(acl, bool):
        raise TopologyError(f"{path}: [mesh] acl must be true or false, got {acl!r}")
    return MeshRules(**ints, acl=acl)


def _check_ports(topo: Topology) -> None:
    """Every derived port of the mesh is distinct (the rules could be mis-tuned)."""
    r = topo.rules
    owner: dict[int, str] = {
        r.consul_http_port: "consul http",
        r.consul_grpc_port: "consul grpc",
        r.consul_dns_port: "consul dns",
        r.consul_server_port: "consul server",
        r.consul_serf_lan_port: "consul serf lan",
        r.consul_serf_wan_port: "consul serf wan",
    }
    for inst in [*topo.instances(), *topo.canary_instances()]:
        ports = {
            inst.port: "grpc",
            inst.sidecar_port: "sidecar",
            inst.admin_port: "admin",
            inst.metrics_port: "metrics",
            **{p: f"upstream {u}" for u, p in inst.upstream_ports.items()},
        }
        for port, what in ports.items():
            label = f"{inst.instance_id} {what}"
            if port in owner:
                raise TopologyError(f"{topo.source}: port {port} used by {owner[port]} and {label}")
            if not 1024 < port < 32768:  # below Linux's ephemeral range, above privileged
                raise TopologyError(f"{topo.source}: {label} port {port} out of 1025-32767")
            owner[port] = label
