"""topology.toml -> Kubernetes objects for a cluster where consul-k8s runs the mesh.

The same model as docker-compose.yml (tools/compose/model.py), not a second reading of
the topology: services, releases, instance counts, ports and upstreams come from
tools.mesh.topology; the edge's Envoy config, its upstream ports and its public RPCs
from tools.mesh.edge; NATS's command and clients from tools.mesh.nats; image versions
from the pins (tools.compose.model.Versions); which service keeps a SQLite database
from its code (tools.compose.model.owns_database). consul-k8s, not the kit, registers
every pod in Consul and injects its Envoy sidecar, so no pod sets
MESHMART_CONSUL_HTTP_ADDR.

Per service of topology.toml:

- a ServiceAccount named after the service: its mesh identity (consul-k8s issues the
  pod's certificate for the ServiceAccount's name, which intentions match);
- a Service (ClusterIP, port "grpc"): the Consul service consul-k8s registers;
- a workload per release (the service's own instances, and its canary as
  ``<service>-<version>``), replicas = the release's instance count, with
  ``consul.hashicorp.com/connect-inject``, one upstream annotation entry per upstream
  at the local port topology.toml derives for it, ``service-meta-version`` (the
  resolver's subsets filter on it), gRPC readiness/liveness/startup probes on the
  official health service, resources from bench/REPORT.md (RESOURCES), non-root with a
  read-only root filesystem (the kit writes only to its data and run directories,
  which are volumes);
- where the service keeps SQLite state (see ``storage_mode``):
  * one instance: a StatefulSet of one pod with a PersistentVolumeClaim per state
    directory (volumeClaimTemplates);
  * several instances (catalog, payment): they share one database file as in `make up`
    and compose (WAL needs one kernel), so the Deployment mounts one ReadWriteOnce
    claim and a required pod affinity keeps its replicas on that volume's node: no
    spread across nodes for these, a PodDisruptionBudget still;
  * none: a Deployment spread across nodes (topologySpreadConstraints);
- a PodDisruptionBudget (maxUnavailable 1) for every release with more than one replica.

Around them: the edge as a Deployment, its Envoy config (rendered by tools.mesh.edge's
own builder for a pod: listening on all addresses, calling the sidecar's upstream
listeners on 127.0.0.1) and descriptor set in a ConfigMap, a Service of type
LoadBalancer; NATS as a StatefulSet with a claim for its JetStream store; the JWT keys
as a Secret (kustomize secretGenerator from keys the user service's own code makes, so
no private key is ever committed); Prometheus scrape annotations on every pod (consul-k8s
metrics merging: the app's /metrics and its sidecar's on one port); NetworkPolicies that
let other pods reach a service only through its sidecar.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from services.kit.config import ServiceConfig, upstream_variable
from services.user.keys import JWKS_FILE, PRIVATE_KEY_FILE
from tools.compose.model import (
    DATA_DIR,
    KEYS_DIR,
    RUN_DIR,
    SERVICE_STOP_GRACE,
    STATE_DIRS,
    Versions,
    owns_database,
)
from tools.mesh.edge import api, config, descriptors, openapi
from tools.mesh.edge.mesh import Edge
from tools.mesh.edge.settings import SERVICE_NAME as EDGE
from tools.mesh.nats import SERVICE_NAME as NATS
from tools.mesh.nats import Nats
from tools.mesh.observability import app_metrics_port
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT, Instance, Service, Topology, load_topology
from tools.yamlout import dump

NAMESPACE = "meshmart"
DEPLOY_DIR = ROOT / "deploy" / "k8s"
PART_OF = "meshmart"

# The JWT keys: a Secret that `kubectl apply -k deploy/k8s` generates from the two files
# `python -m services.user.keys --run-dir deploy/k8s` writes (deploy/k8s/keys/, never
# committed). The user service reads both; the edge only the JWKS.
JWT_SECRET = "meshmart-jwt-keys"
JWT_FILES = (PRIVATE_KEY_FILE, JWKS_FILE)
KEYS_SOURCE = "keys"  # deploy/k8s/keys/

# The images' user (Dockerfile, docker/*.Dockerfile: uid and gid 10001).
IMAGE_UID = 10001
# Secret files owned by root, group fsGroup: 0440 lets the image's user read them.
SECRET_MODE = 0o440

# consul-k8s: where the injected sidecar serves the merged Prometheus metrics, and its
# public (mTLS) listener, the only way other pods reach a service.
MERGED_METRICS_PORT = 20200
SIDECAR_PUBLIC_PORT = 20000
PROBE_TIMING = {"readiness": (5, 2), "liveness": (10, 3)}  # period s, failures

# Memory from bench/REPORT.md part 5 (peak RSS under load, MB), one figure per kind of
# process: the Python services (~65; user 169 while hashing passwords with argon2), the
# Go canary (24), Envoy as edge (77) and as sidecar (79), NATS (24). A request is the
# peak with a quarter of headroom, rounded up to 32 MiB; the limit is twice that. CPU:
# the requests are what an idle shop uses; the limit is one core for a one-process
# service (part 2: ~1,200 RPC/s per core) and the Envoy's worker count for Envoys.
PEAK_RSS_MB = {"python": 65, "user": 169, "go": 24, "edge": 78, "sidecar": 79, "nats": 25}
CPU = {"python": ("100m", "1"), "user": ("100m", "1"), "go": ("50m", "1"),
       "edge": ("100m", "2"), "sidecar": ("50m", "1"), "nats": ("50m", "1")}


class K8sError(Exception):
    """The topology cannot be turned into manifests (a shape consul-k8s cannot run)."""


def memory(kind: str) -> tuple[str, str]:
    request = math.ceil(PEAK_RSS_MB[kind] * 1.25 / 32) * 32
    return f"{request}Mi", f"{2 * request}Mi"


def resources(kind: str) -> dict[str, Any]:
    cpu_request, cpu_limit = CPU[kind]
    mem_request, mem_limit = memory(kind)
    return {"requests": {"cpu": cpu_request, "memory": mem_request},
            "limits": {"cpu": cpu_limit, "memory": mem_limit}}


def _seconds(duration: str) -> int:
    return int(duration.removesuffix("s"))


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and the file it is written to (relative to DEPLOY_DIR)."""

    path: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


@dataclass(frozen=True)
class Release:
    """One release of a service: its own instances, or its canary's."""

    service: Service
    version: str  # meta.version of its pods
    language: str
    replicas: int
    first: Instance  # the release's first instance in topology.toml: its ports
    canary: bool

    @property
    def workload(self) -> str:
        """The Deployment/StatefulSet name: the service's, or <service>-<version> for the
        releases of a service that runs a canary."""
        if self.service.canary is None:
            return self.service.name
        return f"{self.service.name}-{self.version}"

    @property
    def selector(self) -> dict[str, str]:
        return {"app": self.service.name, "version": self.version}


def storage_mode(service: str, instances: int) -> str:
    """How a service's state lives in the cluster: "none" (stateless), "statefulset"
    (one instance, its own claims) or "shared" (replicas sharing one claim on one node)."""
    if not persistent_dirs(service):
        return "none"
    return "statefulset" if instances == 1 else "shared"


def persistent_dirs(service: str) -> dict[str, str]:
    """label -> directory of the state a service keeps across restarts (its SQLite
    database, STATE_DIRS), except the JWT keys, which come from the Secret."""
    dirs = {"data": DATA_DIR} if owns_database(service) else {}
    dirs.update({label: d for label, d in STATE_DIRS.get(service, {}).items() if d != KEYS_DIR})
    return dirs


def annotation_upstreams(ports: dict[str, int]) -> str:
    """consul-k8s' connect-service-upstreams: "<service>:<local port>,..."."""
    return ",".join(f"{name}:{port}" for name, port in sorted(ports.items()))


@dataclass(frozen=True)
class K8sModel:
    topology: Topology
    versions: Versions

    @classmethod
    def load(cls) -> K8sModel:
        return cls(topology=load_topology(), versions=Versions.read())

    # --- the mesh's own code, for a pod -------------------------------------------
    @cached_property
    def plan(self) -> MeshPlan:
        # Every process of a pod listens on all its addresses; what it calls through
        # its sidecar is on 127.0.0.1 (consul-k8s binds upstream listeners there). No
        # token files of tools/mesh/acl.py: consul-k8s manages the ACLs (manageSystemACLs,
        # a pod's token from its ServiceAccount), and what the pods run here (the edge's
        # and NATS's registration) sends no token yet (docs/mesh.md, Consul ACLs).
        return MeshPlan(topology=self.topology, address="0.0.0.0", run_dir=Path(RUN_DIR),
                        acl=False)

    @cached_property
    def edge(self) -> Edge:
        return Edge(self.plan)

    @cached_property
    def nats(self) -> Nats:
        return Nats(self.plan)

    def releases(self, service: Service) -> list[Release]:
        own = self.topology.instances_of(service.name)
        out = [Release(service, service.version or self.versions.meshmart, "python",
                       service.instances, own[0], canary=False)]
        if service.canary is not None:
            if storage_mode(service.name, 1) != "none":
                raise K8sError(f"{service.name}: a canary of a service with state has no "
                               "Kubernetes form here (two releases on one database)")
            first = self.topology.canary_instances_of(service.name)[0]
            out.append(Release(service, service.canary.version, service.canary.language,
                               service.canary.instances, first, canary=True))
        return out

    def all_releases(self) -> Iterator[Release]:
        for service in self.topology.services.values():
            yield from self.releases(service)

    def upstream_ports(self, release: Release) -> dict[str, int]:
        """Every upstream of the release's pods -> the local port of its listener."""
        ports = dict(release.first.upstream_ports)
        if self.nats.runs and release.service.name in self.nats.settings.clients:
            ports[NATS] = self.nats.client_port(release.first)
        return ports

    # --- shared pieces ------------------------------------------------------------
    def metadata(self, name: str, app: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": NAMESPACE,
                "labels": {"app": app, "app.kubernetes.io/part-of": PART_OF}, **extra}

    def mesh_annotations(self, upstreams: dict[str, int], version: str, port_name: str,
                         metrics_port: int | None, metrics_path: str) -> dict[str, str]:
        sidecar_cpu = CPU["sidecar"]
        sidecar_memory = memory("sidecar")
        annotations = {
            "consul.hashicorp.com/connect-inject": "true",
            # Upstreams are explicit local listeners, as in `make up`, not DNS redirection.
            "consul.hashicorp.com/transparent-proxy": "false",
            "consul.hashicorp.com/connect-service-port": port_name,
            "consul.hashicorp.com/service-meta-version": version,
            "consul.hashicorp.com/consul-envoy-proxy-concurrency":
                str(self.topology.rules.envoy_concurrency),
            "consul.hashicorp.com/sidecar-proxy-cpu-request": sidecar_cpu[0],
            "consul.hashicorp.com/sidecar-proxy-cpu-limit": sidecar_cpu[1],
            "consul.hashicorp.com/sidecar-proxy-memory-request": sidecar_memory[0],
            "consul.hashicorp.com/sidecar-proxy-memory-limit": sidecar_memory[1],
            "consul.hashicorp.com/enable-metrics": "true",
            "consul.hashicorp.com/enable-metrics-merging": "true",
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(MERGED_METRICS_PORT),
            "prometheus.io/path": "/metrics",
        }
        if upstreams:
            annotations["consul.hashicorp.com/connect-service-upstreams"] = (
                annotation_upstreams(upstreams))
        if metrics_port is not None:
            annotations["consul.hashicorp.com/service-metrics-port"] = str(metrics_port)
            annotations["consul.hashicorp.com/service-metrics-path"] = metrics_path
        return annotations

    @staticmethod
    def pod_security() -> dict[str, Any]:
        return {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID,
                "fsGroup": IMAGE_UID, "seccompProfile": {"type": "RuntimeDefault"}}

    @staticmethod
    def container_security() -> dict[str, Any]:
        return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}}

    @staticmethod
    def probes(action: dict[str, Any]) -> dict[str, Any]:
        """Readiness, liveness and a startup probe (fast while starting, like compose's
        start_interval) on the same check."""
        out = {f"{kind}Probe": {**action, "periodSeconds": period, "failureThreshold": failures}
               for kind, (period, failures) in PROBE_TIMING.items()}
        out["startupProbe"] = {**action, "periodSeconds": 1, "failureThreshold": 60}
        return out

    def container(self, name: str, start: dict[str, Any], ports: dict[str, int],
                  probe: dict[str, Any], kind: str, mounts: list[dict[str, Any]],
                  env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One container: how it starts (``start``: image, and command or args), its TCP
        ports by name, the probes on ``probe``, the resources of ``kind``, the restricted
        security context and its mounts."""
        container: dict[str, Any] = {
            "name": name, **start,
            "ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"}
                      for port_name, port in ports.items()],
        }
        if env is not None:
            container["env"] = env
        container.update({
            **self.probes(probe),
            "resources": resources(kind),
            "securityContext": self.container_security(),
            "volumeMounts": mounts,
        })
        return container

    def pod(self, account: str, selector: dict[str, str], annotations: dict[str, str],
            container: dict[str, Any], volumes: list[dict[str, Any]] | None = None,
            grace_seconds: int | None = None) -> dict[str, Any]:
        """A pod template: the selector's labels, the mesh annotations, the service
        account, the restricted pod security context and one container."""
        spec: dict[str, Any] = {"serviceAccountName": account}
        if grace_seconds is not None:
            spec["terminationGracePeriodSeconds"] = grace_seconds
        spec["securityContext"] = self.pod_security()
        spec["containers"] = [container]
        if volumes is not None:
            spec["volumes"] = volumes
        return {
            "metadata": {
                "labels": {**selector, "app.kubernetes.io/part-of": PART_OF},
                "annotations": annotations,
            },
            "spec": spec,
        }

    @staticmethod
    def spread(selector: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector}}
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ]

    def pdb(self, name: str, app: str, selector: dict[str, str]) -> Manifest:
        return Manifest(f"base/{name}.poddisruptionbudget.yaml", {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self.metadata(name, app),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        })

    def deployment(self, name: str, app: str, replicas: int, selector: dict[str, str],
                   template: dict[str, Any]) -> Manifest:
        return Manifest(f"base/{name}.deployment.yaml", {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(name, app),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                # A new pod is ready before an old one goes: no capacity dip.
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": template,
            },
        })

    def statefulset(self, name: str, app: str, replicas: int, selector: dict[str, str],
                    template: dict[str, Any], claims: dict[str, str]) -> Manifest:
        """``claims``: volume name -> size, one PersistentVolumeClaim each per pod."""
        return Manifest(f"base/{name}.statefulset.yaml", {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": self.metadata(name, app),
            "spec": {
                "serviceName": app,
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": template,
                "volumeClaimTemplates": [
                    {"metadata": {"name": label}, "spec": self.claim(size)}
                    for label, size in claims.items()
                ],
            },
        })

    @staticmethod
    def claim(size: str = "1Gi") -> dict[str, Any]:
        return {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}

    # --- per service --------------------------------------------------------------
    def service_account(self, name: str) -> Manifest:
        return Manifest(f"base/{name}.serviceaccount.yaml", {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": self.metadata(name, name),
        })

    def service(self, name: str, port_name: str, port: int, kind: str = "ClusterIP",
                ) -> Manifest:
        return Manifest(f"base/{name}.service.yaml", {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(name, name),
            "spec": {
                "type": kind,
                "selector": {"app": name},
                "ports": [{"name": port_name, "port": port, "targetPort": port_name,
                           "protocol": "TCP"}],
            },
        })

    def environment(self, release: Release) -> list[dict[str, Any]]:
        """The kit's settings (ServiceConfig.to_env, as compose and `make up` hand them),
        with the pod's values; the instance id is the pod's name."""
        inst = release.first
        ports = self.upstream_ports(release)
        kit = ServiceConfig(
            name=release.service.name,
            host="0.0.0.0",
            port=inst.port,
            instance_id=inst.instance_id,
            data_dir=Path(DATA_DIR),
            run_dir=Path(RUN_DIR),
            # Inside the pod: the sidecar's upstream listeners, on loopback.
            upstreams={u: f"127.0.0.1:{port}" for u, port in ports.items()},
            # As `make up`: an end user only from the edge and topology's asserts_users.
            user_asserters=self.topology.user_asserters(EDGE),
        ).to_env()
        kit.update({
            "MESHMART_SERVICE_VERSION": release.version,
            "MESHMART_METRICS_PORT": str(app_metrics_port(inst)),
        })
        if NATS in ports:
            kit["MESHMART_NATS_URL"] = f"nats://{kit[upstream_variable(NATS)]}"
        env: list[dict[str, Any]] = []
        for name, value in kit.items():
            if name == "MESHMART_INSTANCE_ID":
                env.append({"name": name,
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
            else:
                env.append({"name": name, "value": value})
        return env

    def volumes(self, release: Release) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(pod volumes, container mounts) besides the state claims."""
        volumes: list[dict[str, Any]] = [{"name": "run", "emptyDir": {}},
                                         {"name": "tmp", "emptyDir": {}}]
        mounts: list[dict[str, Any]] = [{"name": "run", "mountPath": RUN_DIR},
                                        {"name": "tmp", "mountPath": "/tmp"}]
        if KEYS_DIR in STATE_DIRS.get(release.service.name, {}).values():
            volumes.append({"name": "jwt-keys", "secret": {
                "secretName": JWT_SECRET, "defaultMode": SECRET_MODE}})
            mounts.append({"name": "jwt-keys", "mountPath": KEYS_DIR, "readOnly": True})
        return volumes, mounts

    def service_container(self, release: Release,
                          mounts: list[dict[str, Any]]) -> dict[str, Any]:
        name = release.service.name
        inst = release.first
        kind = "go" if release.language == "go" else ("user" if name == "user" else "python")
        if release.language == "go":
            start = {"image": self.versions.go_image(name)}  # the binary is the entrypoint
        else:
            start = {"image": self.versions.service_image,
                     "command": ["python", "-m", f"services.{name}"]}
        return self.container(
            name, start, {"grpc": inst.port, "metrics": app_metrics_port(inst)},
            {"grpc": {"port": inst.port}}, kind, mounts, env=self.environment(release))

    def pod_template(self, release: Release, extra_volumes: list[dict[str, Any]],
                     extra_mounts: list[dict[str, Any]]) -> dict[str, Any]:
        volumes, mounts = self.volumes(release)
        return self.pod(
            release.service.name, release.selector,
            self.mesh_annotations(self.upstream_ports(release), release.version, "grpc",
                                  app_metrics_port(release.first), "/metrics"),
            self.service_container(release, mounts + extra_mounts),
            volumes=volumes + extra_volumes,
            # serve(): NOT_SERVING, drain, stop with a grace (compose's stop grace).
            grace_seconds=_seconds(SERVICE_STOP_GRACE),
        )

    def workloads(self, release: Release) -> list[Manifest]:
        name = release.service.name
        mode = storage_mode(name, release.service.instances)
        dirs = persistent_dirs(name)
        mounts = [{"name": label, "mountPath": d} for label, d in dirs.items()]
        out: list[Manifest] = []
        if mode == "statefulset":
            template = self.pod_template(release, [], mounts)
            out.append(self.statefulset(release.workload, name, release.replicas,
                                        release.selector, template,
                                        dict.fromkeys(dirs, "1Gi")))
        else:
            claims = [{"name": label, "persistentVolumeClaim": {"claimName": f"{name}-{label}"}}
                      for label in dirs]
            template = self.pod_template(release, claims, mounts)
            if mode == "shared":
                # One ReadWriteOnce volume shared by the replicas: all on its node.
                template["spec"]["affinity"] = {"podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": name}},
                        "topologyKey": "kubernetes.io/hostname",
                    }]}}
                for label in dirs:
                    out.append(Manifest(f"base/{name}-{label}.persistentvolumeclaim.yaml", {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": self.metadata(f"{name}-{label}", name),
                        "spec": self.claim(),
                    }))
            elif release.replicas > 1:
                template["spec"]["topologySpreadConstraints"] = self.spread(release.selector)
            out.append(self.deployment(release.workload, name, release.replicas,
                                       release.selector, template))
        if release.replicas > 1:
            out.append(self.pdb(release.workload, name, release.selector))
        return out

    def service_manifests(self, service: Service) -> list[Manifest]:
        out = [self.service_account(service.name),
               self.service(service.name, "grpc", service.port)]
        for release in self.releases(service):
            out.extend(self.workloads(release))
        return out

    # --- NATS ---------------------------------------------------------------------
    def nats_manifests(self) -> list[Manifest]:
        if not self.nats.runs:
            return []
        settings = self.nats.settings
        selector = {"app": NATS, "version": self.versions.nats}
        health = {"httpGet": {"path": "/healthz?js-enabled-only=true", "port": "monitor"}}
        container = self.container(
            NATS,
            # The image's entrypoint runs nats-server with these flags: the command of
            # `make up` (tools.mesh.nats), store under <run>/nats.
            {"image": self.versions.nats_image, "args": self.nats.server_command()[1:]},
            {"client": settings.port, "monitor": settings.monitor_port},
            health, "nats",
            [{"name": "jetstream", "mountPath": str(self.nats.store_dir)}],
        )
        template = self.pod(
            NATS, selector,
            self.mesh_annotations({}, self.versions.nats, "client", None, ""), container)
        return [
            self.service_account(NATS),
            self.service(NATS, "client", settings.port),
            self.statefulset(NATS, NATS, 1, selector, template, {"jetstream": "5Gi"}),
        ]

    # --- the edge -----------------------------------------------------------------
    def edge_config(self) -> dict[str, str]:
        """The edge's Envoy config, rendered by tools.mesh.edge's builder for a pod."""
        edge = self.edge
        targets = {name: ("127.0.0.1", port)
                   for name, port in edge.instance.upstream_ports.items()}
        # No storefront (web/) in a pod: its files are not in the edge's ConfigMap.
        boot = config.bootstrap(edge.settings, edge.rpcs, targets, "0.0.0.0",
                                replace(edge.files(Path(RUN_DIR)), web=""))
        host = f"{EDGE}.{NAMESPACE}.svc:{edge.settings.port}"
        doc = openapi.edge_openapi(edge.rpcs, host)
        return {"edge.yaml": dump(boot),
                "openapi.json": json.dumps(doc, indent=2) + "\n"}

    def edge_manifests(self) -> list[Manifest]:
        if not self.edge.runs:
            return []
        edge = self.edge
        settings = edge.settings
        protoset = descriptors.edge_descriptor_set(api.load_descriptor_set())
        edge_dir = f"{RUN_DIR}/edge"
        selector = {"app": EDGE, "version": self.versions.meshmart}
        command = ["/app/.venv/bin/envoy", "-c", f"{edge_dir}/edge.yaml",
                   "--disable-hot-restart", "--log-level", "warn"]
        if settings.concurrency > 0:
            command += ["--concurrency", str(settings.concurrency)]
        container = self.container(
            EDGE, {"image": self.versions.edge_image, "command": command},
            {"http": settings.port, "admin": settings.admin_port},
            {"httpGet": {"path": "/ready", "port": "admin"}}, "edge",
            [
                {"name": "config", "mountPath": edge_dir, "readOnly": True},
                {"name": "jwks", "mountPath": KEYS_DIR, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        )
        template = self.pod(
            EDGE, selector,
            self.mesh_annotations(dict(edge.instance.upstream_ports), self.versions.meshmart,
                                  "http", settings.admin_port, "/stats/prometheus"),
            container,
            volumes=[
                {"name": "config", "configMap": {"name": EDGE}},
                {"name": "jwks", "secret": {
                    "secretName": JWT_SECRET, "defaultMode": SECRET_MODE,
                    "items": [{"key": JWKS_FILE, "path": JWKS_FILE}]}},
                {"name": "tmp", "emptyDir": {}},
            ],
        )
        return [
            self.service_account(EDGE),
            self.service(EDGE, "http", settings.port, kind="LoadBalancer"),
            Manifest(f"base/{EDGE}.configmap.yaml", {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": self.metadata(EDGE, EDGE),
                "data": self.edge_config(),
                "binaryData": {"edge.protoset": base64.b64encode(protoset).decode("ascii")},
            }),
            self.deployment(EDGE, EDGE, 1, selector, template),
        ]

    # --- the network ----------------------------------------------------------------
    def network_policies(self) -> list[Manifest]:
        """Without transparent proxying a service's own port listens on the pod's address
        (the kubelet's gRPC probe dials it there), so a pod could call it directly,
        around its sidecar and the intentions. These policies admit other pods only to
        the sidecar's mTLS listener and the merged metrics, and the edge's public port;
        the kubelet's probes still pass (traffic from a pod's own node is always allowed)."""
        def ports(*numbers: int | str) -> list[dict[str, Any]]:
            return [{"protocol": "TCP", "port": n} for n in numbers]

        out = [Manifest("base/mesh-only.networkpolicy.yaml", {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "mesh-only", "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/part-of": PART_OF}},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": ports(SIDECAR_PUBLIC_PORT, MERGED_METRICS_PORT)}],
            },
        })]
        if self.edge.runs:
            out.append(Manifest(f"base/{EDGE}-public.networkpolicy.yaml", {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": self.metadata(f"{EDGE}-public", EDGE),
                "spec": {
                    "podSelector": {"matchLabels": {"app": EDGE}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"ports": ports(self.edge.settings.port)}],
                },
            }))
        return out

    # --- the whole ----------------------------------------------------------------
    def namespace(self) -> Manifest:
        return Manifest("base/namespace.yaml", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": PART_OF}},
        })

    def manifests(self) -> list[Manifest]:
        """Every Kubernetes-native object (the consul-k8s resources: tools.k8s.crds)."""
        out = [self.namespace()]
        for service in self.topology.services.values():
            out.extend(self.service_manifests(service))
        out.extend(self.nats_manifests())
        out.extend(self.edge_manifests())
        out.extend(self.network_policies())
        return out

    def jwt_secret(self, keys_dir: Path) -> dict[str, Any]:
        """The Secret deploy/k8s/kustomization.yaml's secretGenerator makes from keys_dir."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": JWT_SECRET, "namespace": NAMESPACE},
            "type": "Opaque",
            "data": {name: base64.b64encode((keys_dir / name).read_bytes()).decode("ascii")
                     for name in JWT_FILES},
        }

    def kustomization(self) -> dict[str, Any]:
        return {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["base", "mesh"],
            "secretGenerator": [{
                "name": JWT_SECRET,
                "namespace": NAMESPACE,
                "type": "Opaque",
                "files": [f"{KEYS_SOURCE}/{name}" for name in JWT_FILES],
                # A fixed name: the user and edge pods mount it by this name.
                "options": {"disableNameSuffixHash": True},
            }],
        }
