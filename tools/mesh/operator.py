"""The operator in a mesh run: a Connect identity of its own, through which a person (and
the tests, and tools/chaos) reaches every service, as an operator would in a zero-trust
mesh where no service port is reachable from outside its pod.

"operator" is a Connect service (instance "operator-1") with no process of its own,
only a sidecar on the host side, beside the edge's: ``python -m tools.mesh.operator run``
registers operator-1 with the local agent, then becomes that sidecar (the same shim and
`consul connect envoy -sidecar-for operator-1` as every other). The sidecar has a local
listener on the mesh address for every service of topology.toml, at
``upstream_port_base + slot * 10`` (catalog, slot 1 -> 32010), and for the services in
topology.toml ``[operator] per_instance`` one per instance N at ``+ N`` (payment-1 ->
32041): the Connect upstream "payment-1", a virtual service that
consul/config-entries/payment-1/service-resolver.hcl redirects to payment's subset of
that one instance. A plain `grpcurl -plaintext 127.0.0.1:32010 list` then crosses the
operator's sidecar and catalog's over mTLS, and the intentions decide what the operator
may call: reflection, grpc.health.v1, the read methods of each service
(idempotency_level = NO_SIDE_EFFECTS in proto/), and the admin services (payment's
fault knob), which no other identity may call (tools/mesh/entries.py checks both).

    python -m tools.mesh.operator run [--address A] [--run-dir R]   what supervisord runs
    python -m tools.mesh.operator ports                             its local listeners
"""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf import descriptor_pb2

from services.kit.registration import service_registration
from tools.mesh import envoy
from tools.mesh.cli import exec_binary, mesh_parser, plan_of, run_args
from tools.mesh.component import Component
from tools.mesh.edge import api
from tools.mesh.health import service_health, wait_for_state
from tools.mesh.http import HTTPFailure, register_service
from tools.mesh.plan import MeshPlan, Program
from tools.mesh.table import render_table
from tools.mesh.topology import Instance, TopologyError, load_table
from tools.mesh.version import source_version

SERVICE_NAME = "operator"
INSTANCE_ID = "operator-1"

# What the operator may call on every service beside its reads: grpcurl's reflection
# (it tries v1 first and falls back to v1alpha only on UNIMPLEMENTED, so both) and
# grpc.health.v1.
SERVICE_PREFIXES = (
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.health.v1.Health/",
)
# A gRPC service of a contract whose name ends so is an admin surface (payment's fault
# knob, PaymentAdminService): the operator may call it, and no other identity.
ADMIN_SUFFIX = "AdminService"
MATCHES = ("PathExact", "PathPrefix", "PathRegex")


def _contract_services(
    descriptor_set: descriptor_pb2.FileDescriptorSet, service: str
) -> list[descriptor_pb2.ServiceDescriptorProto]:
    """The gRPC services of topology service ``service``'s contract (meshmart.<it>.v1)."""
    return [svc for file in descriptor_set.file if file.package.split(".")[:2] ==
            ["meshmart", service] for svc in file.service]


def admin_paths(descriptor_set: descriptor_pb2.FileDescriptorSet, service: str) -> list[str]:
    """The gRPC paths of ``service``'s admin services' methods."""
    package = next((f.package for f in descriptor_set.file
                    if f.package.split(".")[:2] == ["meshmart", service]), "")
    return [f"/{package}.{svc.name}/{method.name}"
            for svc in _contract_services(descriptor_set, service)
            if svc.name.endswith(ADMIN_SUFFIX) for method in svc.method]


def operator_permissions(
    descriptor_set: descriptor_pb2.FileDescriptorSet, service: str
) -> set[tuple[str, str]]:
    """What the operator's intention on ``service`` allows, as (match, path): reflection
    and health, every read (an RPC whose REST face is a GET: HTTP's safe method, no side
    effects; api.public_rpcs) and each admin service as a prefix."""
    reads = {("PathExact", rpc.grpc_path)
             for rpc in api.public_rpcs(descriptor_set, [service]) if rpc.verb == "get"}
    admin = {("PathPrefix", path.rpartition("/")[0] + "/")
             for path in admin_paths(descriptor_set, service)}
    return {*(("PathPrefix", p) for p in SERVICE_PREFIXES), *reads, *admin}


def permits(http: dict[str, Any], path: str) -> bool:
    """Whether an intention permission's HTTP match takes gRPC path ``path``."""
    if "PathExact" in http:
        return bool(http["PathExact"] == path)
    if "PathPrefix" in http:
        return path.startswith(str(http["PathPrefix"]))
    if "PathRegex" in http:
        return re.fullmatch(str(http["PathRegex"]), path) is not None
    return True  # no path match: every path (a header or method match only)


class OperatorError(Exception):
    """The operator's sidecar could not be registered or made ready."""


@dataclass(frozen=True)
class OperatorSettings:
    """topology.toml [operator]."""

    sidecar_port: int = 21001  # its sidecar's public listener (nobody dials the operator)
    sidecar_admin_port: int = 19001
    sidecar_metrics_port: int = 20001
    upstream_port_base: int = 32000  # + slot * 10 (a service), + N (its instance N)
    per_instance: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Operator(Component):
    plan: MeshPlan

    @property
    def settings(self) -> OperatorSettings:
        return load_table(self.plan.topology.source, "operator", OperatorSettings)

    @property
    def services(self) -> list[str]:
        """The services the operator reaches: every one this plan runs."""
        return self.plan.present_services()

    def instance_targets(self) -> dict[str, str]:
        """Per-instance upstream ("payment-1") -> the service it is an instance of."""
        per_instance = set(self.settings.per_instance) & set(self.services)
        return {
            inst.instance_id: inst.service
            for inst in self.plan.instances() if inst.service in per_instance
        }

    @property
    def instance(self) -> Instance:
        s = self.settings
        topology = self.plan.topology
        ups = {
            name: s.upstream_port_base + topology.services[name].slot * 10
            for name in self.services
        }
        for instance_id, service in self.instance_targets().items():
            number = int(instance_id.rpartition("-")[2])
            ups[instance_id] = ups[service] + number
        mesh_index = int(ipaddress.IPv4Address(self.plan.address)) & 0xFF
        return Instance(
            service=SERVICE_NAME,
            number=1,
            # No process: a person (grpcurl), a test or a tool is the operator's "service".
            port=0,
            address=self.plan.address,
            sidecar_port=s.sidecar_port,
            admin_port=s.sidecar_admin_port,
            metrics_port=s.sidecar_metrics_port,
            # Services use mesh_index * 1000 + 0..99, the edge 999, NATS 998.
            base_id=mesh_index * 1000 + 997,
            upstream_ports=ups,
        )

    def target(self, name: str) -> str:
        """host:port of the operator's listener for service or instance ``name``."""
        inst = self.instance
        if name not in inst.upstream_ports:
            raise OperatorError(f"the operator has no listener for {name!r} (services: "
                                f"{', '.join(sorted(inst.upstream_ports))})")
        return inst.upstream_target(name)

    def edges(self) -> set[tuple[str, str]]:
        """(operator, service) pairs the intentions must allow."""
        return {(SERVICE_NAME, name) for name in self.services}

    # --- config entries -----------------------------------------------------------
    def entry_problems(
        self, intentions: list[dict[str, Any]], resolvers: list[dict[str, Any]]
    ) -> list[str]:
        """Where Consul's entries (as read back) break the operator's rules: its
        intention on each service allows exactly ``operator_permissions``; no other
        identity may call an admin service; every per-instance upstream has its
        redirecting resolver and its subset."""
        descriptor_set = api.load_descriptor_set()
        where = "consul/config-entries"
        problems: list[str] = []
        by_name = {str(e["Name"]): e for e in intentions}
        for service in self.services:
            sources = by_name.get(service, {}).get("Sources") or []
            own = next((s for s in sources if s["Name"] == SERVICE_NAME), None)
            if own is None:
                continue  # the call-graph check names the missing intention
            have = {(match, str(p["HTTP"][match])) for p in own.get("Permissions") or []
                    if p["Action"] == "allow" for match in MATCHES if match in p["HTTP"]}
            want = operator_permissions(descriptor_set, service)
            if own.get("Action") == "allow" or have != want:
                problems.append(
                    f"intention operator -> {service} ({where}/{service}/"
                    f"service-intentions.hcl) must allow exactly reflection, health, the "
                    f"reads and the admin services: missing {sorted(want - have)}, extra "
                    f"{sorted(have - want)}")
        for service in self.services:
            admin = admin_paths(descriptor_set, service)
            for dest in (service, "*"):
                for source in by_name.get(dest, {}).get("Sources") or []:
                    if source["Name"] == SERVICE_NAME:
                        continue
                    for path in admin:
                        # Permissions are tried in order: an allow that takes the path
                        # before any deny does.
                        first = next((p for p in source.get("Permissions") or []
                                      if permits(p.get("HTTP") or {}, path)), None)
                        if source.get("Action") == "allow" or (
                                first is not None and first["Action"] == "allow"):
                            problems.append(
                                f"intention {source['Name']} -> {dest} allows {path}: only "
                                f"the operator may call an admin service")
                            break
        resolver_of = {str(e["Name"]): e for e in resolvers}
        for instance_id, service in self.instance_targets().items():
            redirect = resolver_of.get(instance_id, {}).get("Redirect") or {}
            if (redirect.get("Service"), redirect.get("ServiceSubset")) != (service,
                                                                             instance_id):
                problems.append(
                    f"no service-resolver {instance_id} redirecting to {service}'s subset "
                    f"{instance_id} ({where}/{instance_id}/service-resolver.hcl)")
            subset = (resolver_of.get(service, {}).get("Subsets") or {}).get(instance_id)
            if not subset or f'"{instance_id}"' not in str(subset.get("Filter", "")):
                problems.append(
                    f"service-resolver {service} has no subset {instance_id} "
                    f'(Filter = Service.Proxy.DestinationServiceID == "{instance_id}")')
        return problems

    # --- processes ----------------------------------------------------------------
    def programs(self) -> list[Program]:
        # One program: it registers operator-1, then becomes its sidecar (started by `up`
        # with the other sidecars; Envoy drains on TERM).
        command = [self.plan.python, "-m", "tools.mesh.operator", "run",
                   *run_args(self.plan)]
        return [replace(self.plan.sidecar_program(self.instance), command=command)]

    # --- Consul -------------------------------------------------------------------
    def registration(self) -> dict[str, Any]:
        """operator-1 with its sidecar and its upstreams (the kit's builder). No check: no
        process stands behind it; its sidecar's checks say whether it is there."""
        inst = self.instance
        return service_registration(
            name=SERVICE_NAME,
            instance_id=INSTANCE_ID,
            address=inst.address,
            port=inst.port,
            version=source_version(self.plan.root),
            tags=["operator"],
            check=None,
            sidecar_port=inst.sidecar_port,
            sidecar_metrics_addr=f"{inst.address}:{inst.metrics_port}",
            upstreams={name: inst.upstream_target(name) for name in inst.upstream_ports},
        )

    def register(self, timeout: float = 30.0) -> None:
        try:
            register_service(self.plan.consul_url, self.registration(), timeout,
                             self.plan.token_file(SERVICE_NAME))
        except HTTPFailure as failure:
            raise OperatorError(f"could not register {INSTANCE_ID}: {failure}") from None

    # --- readiness ----------------------------------------------------------------
    def state(self) -> dict[str, str]:
        return {
            "sidecar": envoy.ready(self.instance.admin_url),
            "sidecar_health": service_health(self.plan.consul_url,
                                             f"{SERVICE_NAME}-sidecar-proxy",
                                             self.plan.consul_token),
        }

    def wait_ready(self, deadline: float) -> list[str]:
        """Until its Envoy is LIVE and Consul passes its sidecar."""
        want = {"sidecar": "LIVE", "sidecar_health": "passing"}
        wait_for_state(self.state, want, deadline, lambda state: OperatorError(
            f"operator sidecar not ready before the deadline: {state}; see "
            f"{self.plan.logs_dir}/{INSTANCE_ID}-sidecar.log"
        ))
        return []

    # --- status -------------------------------------------------------------------
    def render_status(self) -> str:
        """The operator's listeners: what grpcurl dials (mTLS and intentions apply)."""
        inst = self.instance
        try:
            state = self.state()
        except HTTPFailure as failure:
            return f"operator sidecar: Consul does not answer ({failure})"
        head = (f"operator {INSTANCE_ID}: sidecar {state['sidecar']} "
                f"({state['sidecar_health']}), admin {inst.admin_url}; its listeners "
                "(grpcurl -plaintext <listener> list):")
        rows = [[name, inst.upstream_target(name)] for name in inst.upstream_ports]
        return head + "\n" + render_table(["service", "operator listener"], rows)

    def hints(self) -> str:
        if "catalog" not in self.services:
            return ""
        catalog = self.target("catalog")
        lines = [
            f"grpcurl (operator) grpcurl -plaintext {catalog} list   (operator-1's sidecar "
            "-> mTLS -> catalog; reflection, health and reads allowed)",
            f"                   grpcurl -plaintext {catalog} describe "
            "meshmart.catalog.v1.CatalogService",
            f"                   grpcurl -plaintext -d '{{\"page_size\": 2}}' {catalog} "
            "meshmart.catalog.v1.CatalogService/ListProducts",
        ]
        if instances := self.instance_targets():
            first = next(iter(instances))
            lines.append(
                f"fault knob         grpcurl -plaintext {self.target(first)} "
                f"meshmart.payment.v1.PaymentAdminService/GetFault   ({first} only)")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = mesh_parser("python -m tools.mesh.operator", __doc__, ["run", "ports"]).parse_args(
        argv)
    try:
        operator = Operator(plan_of(args))
        inst = operator.instance
        if args.command == "ports":
            for name in inst.upstream_ports:
                sys.stdout.write(f"{name} {inst.upstream_target(name)}\n")
            return 0
        operator.register()
        # Become the sidecar (its shim waits for the registration just made, then execs
        # `consul connect envoy -sidecar-for operator-1`).
        exec_binary(f"operator: registered as {INSTANCE_ID}",
                    operator.plan.sidecar_command(inst))
    except (OperatorError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
