"""One mesh run as data: topology + loopback address + run directory -> instances, paths,
addresses, and the command line and environment of each instance and its sidecar.

A ``MeshPlan`` runs nothing and reads nothing but topology.toml and which service
packages exist. The components of a run (tools/mesh/component.py) are built from it,
tools/mesh/control assembles every ``Program`` and supervisor.py renders them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from services.kit.config import ServiceConfig
from tools.mesh.pods import PodNetwork
from tools.mesh.topology import ROOT, HostsSettings, Instance, Topology, host_of, load_table

# Every process of a mesh carries this variable (supervisord passes it on, Consul
# and Envoy inherit it through exec), so `down` and the tests can find any process
# of one mesh by its run directory, even one supervisord has lost track of.
MESH_MARKER = "MESHMART_MESH_RUN_DIR"
# 1: the run has Consul ACLs (default deny), 0: it has not; unset: topology.toml decides.
ACL_SETTING = "MESHMART_MESH_ACL"
# The engine of the services' state: "sqlite" (the default: a file per service under
# <run>/data) or "postgresql" (tools/mesh/postgres.py); `make up DB=postgresql`.
DATABASE_SETTING = "MESHMART_MESH_DATABASE"
DATABASE_ENGINES = ("sqlite", "postgresql")
# How many simulated hosts (tools/mesh/hosts.py); unset: topology.toml [hosts] count.
# `make up HOSTS=3`.
HOSTS_SETTING = "MESHMART_MESH_HOSTS"
# Hosts 2.. have their Consul agent in a namespace of their own on the pods' bridge, at
# the pod network's address number HOST_ADDRESS_BASE + host (10.213.X.242, .243, ...).
HOST_ADDRESS_BASE = 238
# <run>/pods: the pods `up` made for the run, one per line (what `down` removes).
PODS_RECORD = "pods"


@dataclass(frozen=True)
class Program:
    name: str  # supervisord program name, e.g. "catalog-1" or "catalog-1-sidecar"
    group: str  # "infra", "services" or "sidecars"
    command: list[str]
    env: dict[str, str]
    log: Path
    priority: int
    autostart: bool
    stop_signal: str
    stop_wait: int


class RunPath:
    """A file or directory at a fixed name under a plan's run directory."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, plan: MeshPlan, owner: type | None = None) -> Path:
        return plan.run_dir / self.name


@dataclass(frozen=True)
class MeshPlan:
    topology: Topology
    address: str = "127.0.0.1"
    run_dir: Path = ROOT / ".run"
    root: Path = ROOT
    # Envoy worker threads per sidecar; 0 = Envoy's default (one per core).
    envoy_concurrency: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)  # added to every service
    # Test-only caller identities: service -> upstreams its sidecar gets beyond the call
    # graph (e.g. cart -> payment, to show that intentions deny it). Never in intentions.
    extra_upstreams: dict[str, list[str]] = field(default_factory=dict)
    # Consul ACLs, default deny (tools/mesh/acl.py); None: topology.toml [mesh] acl.
    acl: bool | None = None
    # Each service instance (process + sidecar) in its own network namespace on a bridge
    # (tools/mesh/pods.py); False: every process shares the loopback ``address``.
    pods: bool = False
    # "sqlite" or "postgresql" (tools/mesh/postgres.py); None: MESHMART_MESH_DATABASE,
    # else "sqlite".
    database: str | None = None
    # How many simulated hosts, each with its own Consul agent (tools/mesh/hosts.py;
    # needs pods); None: MESHMART_MESH_HOSTS, else topology.toml [hosts] count.
    hosts: int | None = None

    # --- paths -------------------------------------------------------------------
    @property
    def bin(self) -> Path:
        return self.root / ".venv" / "bin"

    @property
    def python(self) -> str:
        # The venv's interpreter (it has the repo and gen/python on its path).
        venv_python = self.bin / "python"
        return str(venv_python if venv_python.exists() else Path(sys.executable))

    supervisor_conf = RunPath("supervisord.conf")
    supervisor_sock = RunPath("supervisor.sock")
    supervisor_pidfile = RunPath("supervisord.pid")
    logs_dir = RunPath("logs")  # one <program>.log each
    data_dir = RunPath("data")  # the services' SQLite files
    consul_data_dir = RunPath("consul")
    tokens_dir = RunPath("acl")  # one <name>.token per grant (tools/mesh/acl.py), 0600

    # --- Consul ACLs -------------------------------------------------------------
    @property
    def acl_enabled(self) -> bool:
        """``acl``, else MESHMART_MESH_ACL=1/0 (`make up ACL=1`; every program of the run
        gets it), else topology.toml's [mesh] acl."""
        if self.acl is not None:
            return self.acl
        setting = os.environ.get(ACL_SETTING)
        return self.topology.rules.acl if setting is None else setting == "1"

    @property
    def database_engine(self) -> str:
        """``database``, else MESHMART_MESH_DATABASE (`make up DB=postgresql`; every
        program of the run gets it), else "sqlite"."""
        engine = self.database or os.environ.get(DATABASE_SETTING) or "sqlite"
        if engine not in DATABASE_ENGINES:
            raise ValueError(f"{DATABASE_SETTING} must be one of {DATABASE_ENGINES}, "
                             f"got {engine!r}")
        return engine

    # --- hosts -------------------------------------------------------------------
    @property
    def host_count(self) -> int:
        """``hosts``, else MESHMART_MESH_HOSTS (`make up HOSTS=3`), else what the run was
        started with (<run>/hosts), else topology.toml [hosts] count (1: one host)."""
        if self.hosts is not None:
            count = self.hosts
        elif setting := os.environ.get(HOSTS_SETTING):
            count = int(setting)
        elif self.hosts_record.exists():  # a running mesh's (`make status`, `down`)
            count = int(self.hosts_record.read_text())
        else:
            count = load_table(self.topology.source, "hosts", HostsSettings).count
        if count < 1:
            raise ValueError(f"the mesh needs at least one host, not {count}")
        if count > 1 and not self.pods:
            raise ValueError(f"{count} hosts need pods (network namespaces: root)")
        return count

    def host_address(self, host: int) -> str:
        """Where host ``host``'s Consul agent is reached: host 1 is the machine itself
        (the bridge's host side, as today); host k > 1 a namespace on the bridge."""
        if host == 1:
            return self.shared_address
        return self.pod_network.address_of(HOST_ADDRESS_BASE + host)

    def host_pods(self) -> dict[str, str]:
        """The namespaces of hosts 2.. (named like pods: "host2"), with their addresses."""
        return {f"host{h}": self.host_address(h) for h in range(2, self.host_count + 1)}

    def consul_http_of(self, inst: Instance) -> str:
        """host:port of the Consul agent of ``inst``'s host, as ``inst`` reaches it."""
        return f"{self.host_address(inst.host)}:{self.topology.rules.consul_http_port}"

    def consul_grpc_of(self, inst: Instance) -> str:
        """host:port of the xDS port of ``inst``'s host's agent, which its sidecar dials."""
        return f"{self.host_address(inst.host)}:{self.topology.rules.consul_grpc_port}"

    def consul_data_dir_of(self, host: int) -> Path:
        return self.consul_data_dir if host == 1 else self.run_dir / f"consul-host{host}"

    def token_file(self, name: str) -> Path | None:
        """The file of grant ``name``'s token (a service, "prometheus", "operator",
        "management"), None when the run has no ACLs."""
        return self.tokens_dir / f"{name}.token" if self.acl_enabled else None

    @property
    def consul_token(self) -> str | None:
        """What the tools send on their own Consul requests: the management token
        (readable only by the user who runs the mesh), None without ACLs or before
        `up` bootstrapped them."""
        # Whatever the setting of this process: a run directory with a management token
        # is a mesh with ACLs (`make status` after `make up ACL=1`).
        path = self.tokens_dir / "management.token"
        return path.read_text().strip() if path.exists() else None
    pods_record = RunPath(PODS_RECORD)
    hosts_record = RunPath("hosts")  # how many hosts `up` started the run with

    # --- addresses ---------------------------------------------------------------
    @cached_property
    def pod_network(self) -> PodNetwork:
        """The bridge and namespaces of this run's pods (named after ``address``)."""
        return PodNetwork.for_loopback(self.address)

    @property
    def shared_address(self) -> str:
        """Where the pods reach the parts every instance shares (Consul, NATS, Zipkin):
        the host side of the bridge with pods, else the loopback ``address``."""
        return self.pod_network.gateway if self.pods else self.address

    @property
    def consul_http(self) -> str:
        """host:port of the Consul agent's HTTP API (what the services are given)."""
        return f"{self.address}:{self.topology.rules.consul_http_port}"

    @property
    def pod_consul_http(self) -> str:
        """Consul's HTTP API as a service instance (in its pod, if any) reaches it."""
        return f"{self.shared_address}:{self.topology.rules.consul_http_port}"

    @property
    def consul_url(self) -> str:
        return f"http://{self.consul_http}"

    @property
    def consul_grpc(self) -> str:
        """host:port of the agent's plaintext xDS port, which every sidecar dials (with
        pods, on the host side of their bridge)."""
        return f"{self.shared_address}:{self.topology.rules.consul_grpc_port}"

    # --- what runs ---------------------------------------------------------------
    def present_services(self) -> list[str]:
        """Services of the topology whose package exists (others are skipped)."""
        return [
            name
            for name in self.topology.services
            if (self.root / "services" / name / "__main__.py").exists()
        ]

    def missing_services(self) -> list[str]:
        present = set(self.present_services())
        return [name for name in self.topology.services if name not in present]

    def instances(self) -> list[Instance]:
        present = set(self.present_services())
        # Extra upstreams that are no service of the topology (another service's database,
        # tools/mesh/postgres.py) are their component's to add.
        topology = self.topology.with_extra_upstreams({
            name: [u for u in ups if u in self.topology.services]
            for name, ups in self.extra_upstreams.items()
        })
        own = [i for i in topology.instances(self.address) if i.service in present]
        # Canary releases (recommendation v2 in Go) run beside their service's instances.
        canaries = [
            i for i in topology.canary_instances(self.address)
            if i.service in present and self.implementation_present(i)
        ]
        if not self.pods:
            return own + canaries
        # A pod each, at a fixed address by the instance's place in the plan (a restarted
        # instance comes back at the same one); inside it, its own loopback.
        count = self.host_count
        return [
            replace(inst, address=self.pod_network.address_of(n), pod_loopback="127.0.0.1",
                    host=host_of(self.topology.services[inst.service], inst.number, count))
            for n, inst in enumerate(own + canaries)
        ]

    def pod_addresses(self) -> dict[str, str]:
        """Pod (= instance id) -> its address; empty without pods."""
        if not self.pods:
            return {}
        return {**{i.instance_id: i.address for i in self.instances()}, **self.host_pods()}

    def in_pod(self, inst: Instance, command: list[str]) -> list[str]:
        """``command`` run in ``inst``'s pod (unchanged for a part on the host side; in
        its host's namespace for a part of host k > 1, a NATS node: tools/mesh/nats.py)."""
        if not inst.pod_loopback:
            if inst.host > 1:
                return [*self.pod_network.exec_prefix(f"host{inst.host}"), *command]
            return command
        return [*self.pod_network.exec_prefix(inst.instance_id), *command]

    @contextlib.contextmanager
    def reach(self, inst: Instance, port: int) -> Iterator[str]:
        """host:port from which the host reaches ``port`` on ``inst``'s local address
        (a sidecar's upstream listener, or the service's own port) while the block runs:
        with pods a port forward into its pod (PodNetwork.port_forward, `kubectl
        port-forward`), without them that address itself."""
        if not inst.pod_loopback:
            yield f"{inst.local_address}:{port}"
            return
        with self.pod_network.port_forward(inst.instance_id, port, self.address) as target:
            yield target

    def implementation_present(self, inst: Instance) -> bool:
        if inst.language == "go":
            return (self.root / "services" / f"{inst.service}-go" / "go.mod").exists()
        return (self.root / "services" / inst.service / "__main__.py").exists()

    def instance_command(self, inst: Instance) -> list[str]:
        """How an instance starts, by its language (tools/mesh/topology.py LANGUAGES)."""
        if inst.language == "go":
            # Built from services/<service>-go by `make setup` (tools/build-go-services.sh).
            return [str(self.bin / f"{inst.service}-go")]
        return [self.python, "-m", f"services.{inst.service}"]

    def instance(self, instance_id: str) -> Instance:
        for inst in self.instances():
            if inst.instance_id == instance_id:
                return inst
        raise KeyError(f"no running instance {instance_id!r} in this mesh")

    def base_env(self) -> dict[str, str]:
        env = {
            MESH_MARKER: str(self.run_dir),
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
        }
        if self.acl_enabled or self.topology.rules.acl:
            # The run's wrappers (NATS, the edge, Prometheus) build their plan from it.
            env[ACL_SETTING] = "1" if self.acl_enabled else "0"
        if self.database_engine != "sqlite":
            env[DATABASE_SETTING] = self.database_engine
        if self.pods and self.host_count > 1:
            env[HOSTS_SETTING] = str(self.host_count)
        return env

    def service_env(self, inst: Instance, version: str) -> dict[str, str]:
        from tools.mesh.edge.settings import SERVICE_NAME as EDGE_SERVICE

        kit = ServiceConfig(
            name=inst.service,
            host=inst.local_address,
            port=inst.port,
            instance_id=inst.instance_id,
            # One data directory per mesh: instances of a service share their SQLite
            # file (payment's idempotency keys must be unique across its instances).
            data_dir=self.data_dir,
            run_dir=self.run_dir,
            upstreams={u: inst.upstream_target(u) for u in inst.upstream_ports},
            user_asserters=self.topology.user_asserters(EDGE_SERVICE),
        )
        env = {
            **self.base_env(),
            **kit.to_env(),
            # Its host's agent (with one host, the mesh's).
            "MESHMART_CONSUL_HTTP_ADDR": self.consul_http_of(inst),
            "MESHMART_SIDECAR_PORT": str(inst.sidecar_port),
            "MESHMART_SIDECAR_METRICS_ADDR": f"{inst.address}:{inst.metrics_port}",
            # A service with releases (topology.toml version/canary) registers its release.
            "MESHMART_SERVICE_VERSION": inst.version or version,
        }
        if (token_file := self.token_file(inst.service)) is not None:
            env["MESHMART_CONSUL_TOKEN_FILE"] = str(token_file)
        if inst.pod_loopback:
            # Registered at the pod's address; Consul's checks reach the process through
            # the sidecar (Proxy.Expose.Checks), as consul-k8s does (services/kit).
            env["MESHMART_SERVICE_ADDRESS"] = inst.address
        env.update(self.extra_env)
        return env

    def sidecar_command(self, inst: Instance) -> list[str]:
        """`consul connect envoy` for one instance, behind the wait-for-registration shim
        (in the instance's pod, if any)."""
        consul_http = self.consul_http_of(inst)  # = consul_http without pods
        envoy_args = ["--base-id", str(inst.base_id), "--log-level", "warn"]
        if self.envoy_concurrency > 0:
            envoy_args += ["--concurrency", str(self.envoy_concurrency)]
        consul_cmd = [
            str(self.bin / "consul"), "connect", "envoy",
            "-sidecar-for", inst.instance_id,
            "-http-addr", consul_http,
            # The plaintext xDS port: the TLS one needs a CA file Envoy is not given.
            "-grpc-addr", self.consul_grpc_of(inst),
            "-admin-bind", f"{inst.address}:{inst.admin_port}",
            "-envoy-binary", str(self.bin / "envoy"),
        ]
        shim = [
            self.python, "-m", "tools.mesh.sidecar",
            "--consul", f"http://{consul_http}",
            "--sidecar-service", f"{inst.service}-sidecar-proxy",
            "--sidecar-id", inst.sidecar_id,
        ]
        # With ACLs the sidecar runs with its service's own token (its service identity).
        if (token_file := self.token_file(inst.service)) is not None:
            consul_cmd += ["-token-file", str(token_file)]
            shim += ["--token-file", str(token_file)]
        return self.in_pod(inst, [*shim, "--", *consul_cmd, "--", *envoy_args])

    def program(
        self,
        name: str,
        group: str,
        command: list[str],
        *,
        priority: int,
        autostart: bool,
        stop_signal: str,
        stop_wait: int,
        env: dict[str, str] | None = None,
    ) -> Program:
        """A program of this run, logging to <logs>/<name>.log (``env``: the base one)."""
        return Program(
            name=name, group=group, command=command,
            env=self.base_env() if env is None else env,
            log=self.logs_dir / f"{name}.log",
            priority=priority, autostart=autostart, stop_signal=stop_signal, stop_wait=stop_wait,
        )

    def sidecar_program(self, inst: Instance) -> Program:
        """The sidecar of ``inst`` (started by `up` after the services, which register it)."""
        return self.program(
            f"{inst.instance_id}-sidecar", "sidecars", self.sidecar_command(inst),
            priority=200, autostart=False, stop_signal="TERM", stop_wait=10,
        )


def shell_line(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
