"""PostgreSQL in a mesh run on it (`make up DB=postgresql`, ``MeshPlan(database=
"postgresql")``): one server, one database and role per service, and one Connect
service per database, so the intentions decide which service reaches which database.
On more hosts (`make up HOSTS=3`) the services with more than one instance keep their
state here whatever the engine (their instances are on several hosts, which cannot
share a SQLite file), the others in their files.

The server is the run's own cluster (tools/postgres.py: initdb under <run>/postgres, one
database and one role per service, CONNECT revoked from PUBLIC). It listens only on the
mesh's loopback address: with pods no pod reaches it there (a pod's 127.0.0.1 is its
own), only the sidecars on the host side do. Each database is a Connect service of its
own, "<service>-db" (instance "<service>-db-1", protocol tcp), registered through the
kit's builder with its own sidecar in front of the same server port, and exactly one
intention: <service> -> <service>-db allow; Consul's default deny refuses every other
pair. Each service gets a Connect upstream "<service>-db" on its own sidecar, at
``client_port_base + (gRPC port - port_block)`` on its local address, and its
MESHMART_DATABASE_URL points there, so every query crosses both sidecars over mTLS as
the service's identity. Why a Connect service per database and not one "postgres"
service: an L4 intention names a destination service, not a database, so one service
would let every client reach every database's login (docs/design.md "PostgreSQL").

    python -m tools.mesh.postgres run [--address A] [--run-dir R]   what supervisord runs
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from services.kit.config import DATABASE_URL_VARIABLE, upstream_variable
from services.kit.registration import service_registration
from tools.mesh.cli import mesh_parser, plan_of, run_args
from tools.mesh.component import Component
from tools.mesh.connect import connect_health
from tools.mesh.health import wait_for_state
from tools.mesh.http import HTTPFailure, register_service
from tools.mesh.plan import MeshPlan, Program
from tools.mesh.table import render_table
from tools.mesh.topology import Instance, TopologyError, load_table
from tools.mesh.version import source_version
from tools.postgres import SERVICES, ClusterError, PostgresCluster, role_name

SUFFIX = "-db"
PROGRAM = "postgres"


class PostgresMeshError(Exception):
    """The databases could not be registered or made ready."""


@dataclass(frozen=True)
class PostgresSettings:
    """topology.toml [postgres]."""

    port: int = 55432  # the server, on the mesh's loopback address
    sidecar_port: int = 21300  # database i's sidecar (mTLS) listener: + i
    sidecar_admin_port: int = 19300  # + i
    sidecar_metrics_port: int = 20300  # + i
    client_port_base: int = 23000  # + (client's gRPC port - port_block)
    # A test-only caller's listener to another service's database (MeshPlan
    # extra_upstreams): + 100 + (client's gRPC port - port_block).
    foreign_port_offset: int = 100


def database_service(service: str) -> str:
    """The Connect service of ``service``'s database: "payment" -> "payment-db"."""
    return f"{service}{SUFFIX}"


@dataclass(frozen=True)
class Postgres(Component):
    plan: MeshPlan
    # The wrapper's own plan is built from topology.toml: it is told the services instead.
    only: tuple[str, ...] | None = None

    @property
    def settings(self) -> PostgresSettings:
        return load_table(self.plan.topology.source, "postgres", PostgresSettings)

    @property
    def services(self) -> list[str]:
        """The services whose state this run keeps in PostgreSQL: on a mesh run on it,
        every service that keeps state; on more hosts (tools/mesh/hosts.py), also those
        with instances on several hosts, which could not share a SQLite file across
        machines; none otherwise."""
        present = set(self.plan.present_services() if self.only is None else self.only)
        stateful = [s for s in SERVICES if s in present]
        if self.only is not None or self.plan.database_engine == "postgresql":
            return stateful
        if self.plan.pods and self.plan.host_count > 1:
            return [s for s in stateful if self.plan.topology.services[s].instances > 1]
        return []

    @property
    def runs(self) -> bool:
        return bool(self.services)

    @property
    def cluster(self) -> PostgresCluster:
        return PostgresCluster(self.plan.run_dir / "postgres", host=self.plan.address,
                               port=self.settings.port)

    def instance(self, service: str) -> Instance:
        """``service``'s database as a Connect instance (its sidecar on the host side)."""
        s, index = self.settings, SERVICES.index(service)
        mesh_index = int(ipaddress.IPv4Address(self.plan.address)) & 0xFF
        return Instance(
            service=database_service(service),
            number=1,
            port=s.port,
            address=self.plan.shared_address,
            sidecar_port=s.sidecar_port + index,
            admin_port=s.sidecar_admin_port + index,
            metrics_port=s.sidecar_metrics_port + index,
            # Services use mesh_index * 1000 + 0..99, edge 999, NATS 998, operator 997.
            base_id=mesh_index * 1000 + 900 + index,
        )

    def instances(self) -> list[Instance]:
        return [self.instance(s) for s in self.services] if self.runs else []

    # --- the clients ---------------------------------------------------------------
    def url(self, service: str, target: str) -> str:
        """The URL ``service`` logs in with at ``target`` (host:port), as its own role."""
        role = role_name(service)
        return f"postgresql://{role}:{self.passwords()[role]}@{target}/{role}"

    def state_of(self, service: str, file_name: str) -> Path | str:
        """Where ``service`` keeps its state in this run, as the tools on the host reach
        it: its SQLite file under the data directory, or (a mesh on PostgreSQL) its
        database at the server itself, as its own role (the host side reaches the
        server's loopback address; no pod does)."""
        if service not in self.services:
            return self.plan.data_dir / file_name
        return self.url(service, f"{self.plan.address}:{self.settings.port}")

    def passwords(self) -> dict[str, str]:
        """role -> password, made once per run directory (<run>/postgres/roles.json,
        0600): the services' URLs are written into supervisord's config before the
        server runs, and the server makes each role with the same password."""
        return self.cluster.passwords_for(self.services)

    def client_target(self, inst: Instance, database_of: str) -> str:
        """Where ``inst``'s sidecar listens for ``database_of``'s database."""
        s = self.settings
        port = s.client_port_base + (inst.port - self.plan.topology.rules.port_block)
        if database_of != inst.service:
            port += s.foreign_port_offset
        return f"{inst.local_address}:{port}"

    def service_env(self, inst: Instance) -> dict[str, str]:
        """The service's upstream to its own database and its URL through it; and the
        test-only listener of ``extra_upstreams`` naming another service's database."""
        if not self.runs:
            return {}
        env = {}
        if inst.service in self.services:
            target = self.client_target(inst, inst.service)
            env[upstream_variable(database_service(inst.service))] = target
            env[DATABASE_URL_VARIABLE] = self.url(inst.service, target)
        for name in self.plan.extra_upstreams.get(inst.service, []):
            owner = name.removesuffix(SUFFIX)
            if name.endswith(SUFFIX) and owner in self.services and owner != inst.service:
                env[upstream_variable(name)] = self.client_target(inst, owner)
        return env

    def edges(self) -> set[tuple[str, str]]:
        return {(s, database_service(s)) for s in self.services} if self.runs else set()

    def config_entries(self) -> list[dict[str, Any]]:
        """Per database: protocol tcp, and one intention, its own service's."""
        entries: list[dict[str, Any]] = []
        for service in self.services if self.runs else []:
            name = database_service(service)
            entries.append({"Kind": "service-defaults", "Name": name, "Protocol": "tcp"})
            entries.append({"Kind": "service-intentions", "Name": name, "Sources": [{
                "Name": service, "Action": "allow",
                "Description": f"only {service} reaches its own database",
            }]})
        return entries

    def connect_services(self) -> list[str]:
        """The Connect services this component registers (each gets an ACL identity)."""
        return [database_service(s) for s in self.services] if self.runs else []

    # --- processes ------------------------------------------------------------------
    def programs(self) -> list[Program]:
        if not self.runs:
            return []
        server = self.plan.program(
            PROGRAM, "infra",
            [self.plan.python, "-m", "tools.mesh.postgres", "run", *run_args(self.plan),
             # The plan's own services (a partial mesh runs a few).
             "--services", ",".join(self.services)],
            # Right after Consul; the services' first connection waits for it (the kit
            # retries opening a database that cannot be reached yet).
            priority=15, autostart=True, stop_signal="TERM", stop_wait=30,
        )
        return [server, *(self.plan.sidecar_program(inst) for inst in self.instances())]

    # --- Consul ---------------------------------------------------------------------
    def registration(self, service: str) -> dict[str, Any]:
        inst = self.instance(service)
        return service_registration(
            name=inst.service,
            instance_id=inst.instance_id,
            address=inst.address,
            # The server's own address, which only the host side reaches.
            local_address=self.plan.address,
            port=inst.port,
            version=source_version(self.plan.root),
            tags=["postgresql"],
            check={"Name": f"{service}'s database accepts connections",
                   "TCP": f"{self.plan.address}:{inst.port}"},
            sidecar_port=inst.sidecar_port,
            meta={"database": role_name(service)},
            sidecar_metrics_addr=f"{inst.address}:{inst.metrics_port}",
            # Registered once by the wrapper: a server down for a minute must come back
            # into its clients' endpoints by itself.
            deregister_critical=False,
        )

    def register(self, timeout: float = 90.0) -> None:
        for service in self.services:
            name = database_service(service)
            try:
                register_service(self.plan.consul_url, self.registration(service), timeout,
                                 self.plan.token_file(name))
            except HTTPFailure as failure:
                raise PostgresMeshError(f"could not register {name}-1: {failure}") from None

    # --- readiness and status -----------------------------------------------------------
    def wait_ready(self, deadline: float) -> list[str]:
        want = {"health": "passing", "sidecar": "LIVE", "sidecar_health": "passing"}
        for inst in self.instances():
            wait_for_state(partial(connect_health, self.plan, inst), want, deadline,
                           partial(self._not_ready, inst))
        return []

    def _not_ready(self, inst: Instance, state: dict[str, str]) -> PostgresMeshError:
        return PostgresMeshError(
            f"{inst.instance_id} not ready before the deadline: {state}; see "
            f"{self.plan.logs_dir}/{PROGRAM}.log and {inst.instance_id}-sidecar.log")

    def render_status(self) -> str:
        if not self.runs:
            return ""
        rows = []
        for inst in self.instances():
            try:
                state = connect_health(self.plan, inst)
            except HTTPFailure as failure:
                return f"PostgreSQL: Consul does not answer ({failure})"
            rows.append([inst.service, inst.service.removesuffix(SUFFIX), state["health"],
                         f"{state['sidecar']} {inst.address}:{inst.sidecar_port} "
                         f"({state['sidecar_health']})"])
        head = (f"PostgreSQL {self.plan.address}:{self.settings.port} (data in "
                f"{self.cluster.data}): one database and role per service, each its own "
                "Connect service")
        return head + "\n" + render_table(["database", "only client", "health", "sidecar"], rows)


def run(plan: MeshPlan, services: list[str]) -> int:
    """The server as this process's child, the databases and roles of ``services``, their
    registrations; then wait for SIGTERM (fast shutdown of the server) or the server's
    end."""
    component = Postgres(plan, only=tuple(services))
    cluster = component.cluster
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    component.passwords()
    cluster.start(timeout=60)
    try:
        for service in component.services:
            cluster.service_database(service)
        sys.stderr.write(f"postgres: pid {cluster.pid} on {plan.address}:{cluster.port}, "
                         f"one database per service: {', '.join(component.services)}\n")
        component.register()
        while not stop.wait(0.5):
            if cluster.pid is None:
                sys.stderr.write(f"postgres: the server ended; see {cluster.log_path}\n")
                return 1
        return 0
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = mesh_parser("python -m tools.mesh.postgres", __doc__, ["run"])
    parser.add_argument("--services", default=",".join(SERVICES),
                        help="the services whose databases the run has (comma-separated)")
    args = parser.parse_args(argv)
    try:
        return run(plan_of(args), [s for s in args.services.split(",") if s])
    except (PostgresMeshError, ClusterError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
