"""One mesh run: topology + loopback address + run directory -> every process to start.

A ``MeshPlan`` says, for each program supervisord runs (Consul, every service instance,
every sidecar), its command line and environment. It is pure data derived from
topology.toml; supervisor.py renders it and control.py runs it.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from services.kit.config import ServiceConfig
from tools.mesh.topology import ROOT, Instance, Topology

if TYPE_CHECKING:
    from tools.mesh.observability import Observability

# Every process of a mesh carries this variable (supervisord passes it on, Consul
# and Envoy inherit it through exec), so `down` and the tests can find any process
# of one mesh by its run directory, even one supervisord has lost track of.
MESH_MARKER = "MESHMART_MESH_RUN_DIR"


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

    # --- paths -------------------------------------------------------------------
    @property
    def bin(self) -> Path:
        return self.root / ".venv" / "bin"

    @property
    def python(self) -> str:
        # The venv's interpreter (it has the repo and gen/python on its path).
        venv_python = self.bin / "python"
        return str(venv_python if venv_python.exists() else Path(sys.executable))

    @property
    def supervisor_conf(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def consul_data_dir(self) -> Path:
        return self.run_dir / "consul"

    # --- addresses ---------------------------------------------------------------
    @property
    def consul_http(self) -> str:
        return f"{self.address}:{self.topology.rules.consul_http_port}"

    @property
    def consul_url(self) -> str:
        return f"http://{self.consul_http}"

    @property
    def consul_grpc(self) -> str:
        return f"{self.address}:{self.topology.rules.consul_grpc_port}"

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
        topology = self.topology.with_extra_upstreams(self.extra_upstreams)
        own = [i for i in topology.instances(self.address) if i.service in present]
        # Canary releases (recommendation v2 in Go) run beside their service's instances.
        canaries = [
            i for i in topology.canary_instances(self.address)
            if i.service in present and self.implementation_present(i)
        ]
        return own + canaries

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

    def version(self) -> str:
        """meta.version of every registration: the commit the mesh runs from."""
        try:
            sha = subprocess.run(
                ["git", "-C", str(self.root), "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True, check=True, timeout=5,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "dev"
        return sha or "dev"

    def base_env(self) -> dict[str, str]:
        return {
            MESH_MARKER: str(self.run_dir),
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
        }

    def service_env(self, inst: Instance, version: str) -> dict[str, str]:
        kit = ServiceConfig(
            name=inst.service,
            host=inst.address,
            port=inst.port,
            instance_id=inst.instance_id,
            # One data directory per mesh: instances of a service share their SQLite
            # file (payment's idempotency keys must be unique across its instances).
            data_dir=self.data_dir,
            run_dir=self.run_dir,
            upstreams={u: inst.upstream_target(u) for u in inst.upstream_ports},
        )
        env = {
            **self.base_env(),
            **kit.to_env(),
            "MESHMART_CONSUL_HTTP_ADDR": self.consul_http,
            "MESHMART_SIDECAR_PORT": str(inst.sidecar_port),
            "MESHMART_SIDECAR_METRICS_ADDR": f"{inst.address}:{inst.metrics_port}",
            # A service with releases (topology.toml version/canary) registers its release.
            "MESHMART_SERVICE_VERSION": inst.version or version,
        }
        # Event clients reach NATS through a Connect upstream (tools/mesh/nats.py).
        from tools.mesh.nats import nats_client_env

        env.update(nats_client_env(self, inst))
        env.update(self.observability().service_env(inst))  # /metrics port, Zipkin
        env.update(self.extra_env)
        return env

    def observability(self) -> Observability:
        """Prometheus, Zipkin and the hooks they need (tools/mesh/observability.py)."""
        from tools.mesh.observability import Observability  # it imports this module

        return Observability(self)

    def sidecar_command(self, inst: Instance) -> list[str]:
        """`consul connect envoy` for one instance, behind the wait-for-registration shim."""
        envoy_args = ["--base-id", str(inst.base_id), "--log-level", "warn"]
        if self.envoy_concurrency > 0:
            envoy_args += ["--concurrency", str(self.envoy_concurrency)]
        consul_cmd = [
            str(self.bin / "consul"), "connect", "envoy",
            "-sidecar-for", inst.instance_id,
            "-http-addr", self.consul_http,
            # The plaintext xDS port: the TLS one needs a CA file Envoy is not given.
            "-grpc-addr", self.consul_grpc,
            "-admin-bind", f"{inst.address}:{inst.admin_port}",
            "-envoy-binary", str(self.bin / "envoy"),
            "--", *envoy_args,
        ]
        return [
            self.python, "-m", "tools.mesh.sidecar",
            "--consul", self.consul_url,
            "--sidecar-service", f"{inst.service}-sidecar-proxy",
            "--sidecar-id", inst.sidecar_id,
            "--", *consul_cmd,
        ]

    def programs(self) -> list[Program]:
        version = self.version()
        programs = [
            Program(
                name="consul",
                group="infra",
                command=[
                    str(self.bin / "consul"), "agent",
                    "-config-file", str(self.root / "consul" / "agent.hcl"),
                    "-data-dir", str(self.consul_data_dir),
                    "-bind", self.address,
                    "-client", self.address,
                    "-advertise", self.address,
                    # The UI's metrics provider and Consul's own metrics (observability.py).
                    *self.observability().consul_args(),
                ],
                env=self.base_env(),
                log=self.logs_dir / "consul.log",
                priority=10,
                autostart=True,
                # SIGINT: Consul's graceful shutdown (flushes raft, closes listeners).
                stop_signal="INT",
                stop_wait=15,
            )
        ]
        for inst in self.instances():
            programs.append(
                Program(
                    name=inst.instance_id,
                    group="services",
                    command=self.instance_command(inst),
                    env=self.service_env(inst, version),
                    log=self.logs_dir / f"{inst.instance_id}.log",
                    priority=300,
                    # Started by `up` once Consul has its config entries (intentions!).
                    autostart=False,
                    # serve(): NOT_SERVING -> deregister -> drain -> stop(grace 10s).
                    stop_signal="TERM",
                    stop_wait=20,
                )
            )
            programs.append(
                Program(
                    name=f"{inst.instance_id}-sidecar",
                    group="sidecars",
                    command=self.sidecar_command(inst),
                    env=self.base_env(),
                    log=self.logs_dir / f"{inst.instance_id}-sidecar.log",
                    priority=200,
                    autostart=False,
                    stop_signal="TERM",
                    stop_wait=10,
                )
            )
        # The edge gateway and its sidecar (tools/mesh/edge; imported here, it imports us).
        from tools.mesh.edge.mesh import edge_programs

        programs += edge_programs(self)
        # NATS JetStream and its sidecar (tools/mesh/nats.py; it imports us too).
        from tools.mesh.nats import nats_programs

        programs += nats_programs(self)
        programs += self.observability().programs()  # Prometheus, Zipkin
        return programs


def shell_line(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
