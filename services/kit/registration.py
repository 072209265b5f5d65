"""Self-registration of a service instance in Consul, with its Connect sidecar.

On start (after the server is SERVING) an instance registers itself with the local
Consul agent: a unique instance id, its loopback address and port, meta (version), a
gRPC health check against its own health servicer, and a Connect sidecar service whose
upstreams are the instance's MESHMART_UPSTREAM_<NAME> listeners. On SIGTERM serve()
turns health NOT_SERVING first and then calls ``deregister``, so callers' sidecars stop
routing here before the drain and the stop.

It is switched on by MESHMART_CONSUL_HTTP_ADDR; without it (unit tests, `make
run-local`) nothing here runs and no Consul is needed. The settings, all written by
``python -m tools.mesh`` from topology.toml:

  MESHMART_CONSUL_HTTP_ADDR      host:port of the Consul agent's HTTP API
  MESHMART_SIDECAR_PORT          the sidecar's public (mTLS) listener port
  MESHMART_SIDECAR_METRICS_ADDR  host:port of the sidecar's Prometheus /metrics (optional)
  MESHMART_SERVICE_VERSION       meta.version of the registration (default "dev")
  MESHMART_CONSUL_TOKEN_FILE     the instance's Consul ACL token (a file; unset: no token)
  MESHMART_UPSTREAM_<NAME>       host:port of the sidecar's local listener for <name>

``service_registration`` is the one builder of a registration body in the repository:
the edge gateway and NATS (tools/mesh) register through it too.

Prometheus finds its targets through these registrations (prometheus/, Consul SD): the
instance's meta.metrics_port is the kit's /metrics endpoint (services/kit/metrics.py),
the sidecar's meta.metrics_port its Envoy Prometheus listener.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consul.std import Consul

from services.kit.config import ConfigError, ServiceConfig, env_float, env_int, env_str
from services.kit.logging import get_logger

log = get_logger("meshmart.registration")


Hook = Callable[[], Awaitable[None]]

# Consul probes each instance's health this often, each probe bounded by the timeout
# (a partitioned instance answers nothing), and turns it critical ...
CHECK_INTERVAL_SECONDS = 1
CHECK_TIMEOUT_SECONDS = 1
# ... but only after this many probes in a row failed. One late answer on a starved box
# is not a dead instance: measured in containers at load 35, inventory-1's probe timed
# out once and Consul had the only instance critical for 1.2 s, so order's sidecar had
# no healthy upstream (upstream_cx_none_healthy 7) and three orders were cancelled.
# A dead instance still leaves its callers' rotation at once: a graceful stop deregisters
# first, and a crashed one is refused at connect (retried elsewhere, then ejected by
# outlier detection after 3 failures); Consul follows within about 3 s.
CHECK_FAILURES_BEFORE_CRITICAL = 3
# A critical instance is removed from the catalog after this long (Consul's reaper runs
# every 30s and enforces one minute as the minimum), so crashed instances don't linger.
DEREGISTER_CRITICAL_AFTER_MINUTES = 1


@dataclass(frozen=True)
class MeshSettings:
    consul_host: str
    consul_port: int
    sidecar_port: int
    metrics_addr: str | None
    version: str
    # Zipkin's span endpoint (MESHMART_ZIPKIN_URL): the sidecar then reports its own spans.
    zipkin_url: str | None
    # How long on_start keeps retrying while the agent is not up yet (supervisord starts
    # Consul and the services together); then the process exits and is restarted.
    register_timeout: float
    # The file holding the instance's ACL token (its service identity), None without ACLs.
    token_file: str | None = None
    # MESHMART_SERVICE_ADDRESS: the address the instance is registered at, when it is not
    # the one it binds (in a pod, tools/mesh/pods.py: it binds the pod's 127.0.0.1, its
    # sidecar and /metrics the pod's address). None: its host.
    service_address: str | None = None

    def token(self) -> str | None:
        if self.token_file is None:
            return None
        with open(self.token_file, encoding="utf-8") as source:
            return source.read().strip()


def advertised_host(config: ServiceConfig, env: Mapping[str, str] | None = None) -> str:
    """Where others reach this instance: MESHMART_SERVICE_ADDRESS, else its host."""
    return env_str("MESHMART_SERVICE_ADDRESS", "", env=env) or config.host


def load_mesh_settings(env: Mapping[str, str] | None = None) -> MeshSettings | None:
    """The mesh settings, or None when MESHMART_CONSUL_HTTP_ADDR is not set."""
    addr = env_str("MESHMART_CONSUL_HTTP_ADDR", "", env=env)
    if not addr:
        return None
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"MESHMART_CONSUL_HTTP_ADDR must be host:port, got {addr!r}")
    metrics = env_str("MESHMART_SIDECAR_METRICS_ADDR", "", env=env)
    return MeshSettings(
        consul_host=host,
        consul_port=int(port),
        sidecar_port=env_int("MESHMART_SIDECAR_PORT", None, minimum=1, maximum=65535, env=env),
        metrics_addr=metrics or None,
        version=env_str("MESHMART_SERVICE_VERSION", "dev", env=env),
        zipkin_url=env_str("MESHMART_ZIPKIN_URL", "", env=env) or None,
        register_timeout=env_float("MESHMART_CONSUL_REGISTER_TIMEOUT", 30.0, minimum=0.0, env=env),
        token_file=env_str("MESHMART_CONSUL_TOKEN_FILE", "", env=env) or None,
        service_address=env_str("MESHMART_SERVICE_ADDRESS", "", env=env) or None,
    )


def envoy_tracing(zipkin_url: str) -> dict[str, str]:
    """Consul 1.14's escape hatches that make a sidecar report spans to Zipkin.

    The tracer goes into Envoy's bootstrap (``envoy_tracing_json``, passed through as
    text): its W3C option is newer than the Envoy API Consul 1.14 can parse, which rules
    out ``envoy_listener_tracing_json``. Consul's listeners already enable tracing with 0 %
    random sampling, so a sidecar traces exactly the requests whose traceparent says
    sampled, continuing the caller's W3C context and passing its own span downstream.
    """
    url = urllib.parse.urlsplit(zipkin_url)
    tracer = {
        "http": {
            "name": "envoy.tracers.zipkin",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
                "collector_cluster": "meshmart_zipkin",
                "collector_endpoint": url.path or "/api/v2/spans",
                "collector_endpoint_version": "HTTP_JSON",
                "shared_span_context": False,
                "trace_context_option": "USE_B3_WITH_W3C_PROPAGATION",
            },
        }
    }
    cluster = {
        "name": "meshmart_zipkin",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "meshmart_zipkin",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": url.hostname or "127.0.0.1", "port_value": url.port or 9411,
            }}}}]}],
        },
    }
    return {
        "envoy_tracing_json": json.dumps(tracer),
        "envoy_extra_static_clusters_json": json.dumps(cluster),
    }


def service_registration(
    *,
    name: str,
    instance_id: str,
    address: str,
    port: int,
    version: str,
    tags: Sequence[str],
    check: Mapping[str, str] | None,
    sidecar_port: int,
    meta: Mapping[str, str] | None = None,
    sidecar_metrics_addr: str | None = None,
    upstreams: Mapping[str, str] | None = None,
    proxy_config: Mapping[str, str] | None = None,
    deregister_critical: bool = True,
    local_address: str | None = None,
) -> dict[str, Any]:
    """The body of Consul's ``PUT /v1/agent/service/register`` for one instance and its
    Connect sidecar: what every part of the mesh registers (a service through the kit, the
    edge gateway and NATS through tools/mesh).

    ``check`` is the instance's own check: its name and probe (``GRPC``, ``HTTP``, ...);
    None for an identity with no process behind it (the operator, tools/mesh/operator.py),
    whose sidecar's checks are all there is.
    ``meta`` is added to ``version`` and ``instance``; ``upstreams`` maps a destination to
    the host:port of the sidecar's local listener for it; ``sidecar_metrics_addr`` is where
    the sidecar's Envoy serves Prometheus metrics. ``deregister_critical=False`` keeps a
    registration that nothing would write again (one registered once, from outside).
    ``local_address``: where the process listens when that is not ``address`` (in a pod:
    its own 127.0.0.1, which only its sidecar reaches); Consul's agent then runs the check
    through the sidecar (``Proxy.Expose.Checks``: a plaintext listener on ``address``
    forwarding exactly the checks' paths, as consul-k8s does)."""
    service_check: dict[str, Any] = {}
    if check is not None:
        service_check = {
            **check,
            "Interval": f"{CHECK_INTERVAL_SECONDS}s",
            "Timeout": f"{CHECK_TIMEOUT_SECONDS}s",
            "FailuresBeforeCritical": CHECK_FAILURES_BEFORE_CRITICAL,
        }
        if deregister_critical:
            service_check["DeregisterCriticalServiceAfter"] = (
                f"{DEREGISTER_CRITICAL_AFTER_MINUTES}m")
    listeners = []
    for upstream, target in sorted((upstreams or {}).items()):
        host, _, bind_port = target.rpartition(":")
        listeners.append(
            {"DestinationName": upstream, "LocalBindAddress": host, "LocalBindPort": int(bind_port)}
        )
    proxy: dict[str, Any] = {
        # The sidecar reaches the process on its own address (not Consul's 127.0.0.1
        # default: a test mesh runs on another loopback address).
        "LocalServiceAddress": local_address or address,
        "LocalServicePort": port,
        "Upstreams": listeners,
    }
    if local_address and local_address != address:
        proxy["Expose"] = {"Checks": True}
    sidecar_meta = {"version": version}
    config: dict[str, str] = {}
    if sidecar_metrics_addr:
        # Per instance, since every sidecar on the machine needs its own port.
        config["envoy_prometheus_bind_addr"] = sidecar_metrics_addr
        sidecar_meta["metrics_port"] = sidecar_metrics_addr.rpartition(":")[2]
    config.update(proxy_config or {})
    if config:
        proxy["Config"] = config
    body: dict[str, Any] = {
        "Name": name,
        "ID": instance_id,
        "Address": address,
        "Port": port,
        "Tags": list(tags),
        "Meta": {"version": version, "instance": instance_id, **(meta or {})},
        "Connect": {
            "SidecarService": {
                "Port": sidecar_port,
                "Meta": sidecar_meta,
                # Replaces Consul's default sidecar checks, whose 10s TCP interval keeps a
                # new sidecar out of its callers' endpoints for up to 10s.
                "Checks": [
                    # No deregister-after here: a sidecar down for a minute must not lose
                    # its registration, or Envoy could not start again for a live process.
                    {
                        "Name": f"{instance_id} sidecar listening",
                        "TCP": f"{address}:{sidecar_port}",
                        "Interval": f"{CHECK_INTERVAL_SECONDS}s",
                    },
                    {"Name": f"{instance_id} alive", "AliasService": instance_id},
                ],
                "Proxy": proxy,
            }
        },
    }
    if service_check:
        body["Check"] = service_check
    return body


def registration(
    config: ServiceConfig, mesh: MeshSettings, metrics_port: int | None = None
) -> dict[str, Any]:
    """This instance's registration body (``metrics_port``: where the process serves
    /metrics, if it does)."""
    return service_registration(
        name=config.name,
        instance_id=config.instance_id,
        address=mesh.service_address or config.host,
        local_address=config.host,
        port=config.port,
        version=mesh.version,
        tags=["grpc"],
        # Overall health ("" service) of the standard servicer.
        check={"Name": f"{config.instance_id} gRPC health", "GRPC": config.address},
        sidecar_port=mesh.sidecar_port,
        meta={} if metrics_port is None else {"metrics_port": str(metrics_port)},
        sidecar_metrics_addr=mesh.metrics_addr,
        upstreams=config.upstreams,
        proxy_config=envoy_tracing(mesh.zipkin_url) if mesh.zipkin_url else None,
    )


def register_arguments(body: Mapping[str, Any]) -> dict[str, Any]:
    """A registration body as the keyword arguments of py-consul's
    ``agent.service.register`` (which writes the same body)."""
    return {
        "name": body["Name"],
        "service_id": body["ID"],
        "address": body["Address"],
        "port": body["Port"],
        "tags": body["Tags"],
        "meta": body["Meta"],
        "check": body.get("Check"),
        "connect": body["Connect"],
        # A restarted instance re-registers with the same id: replace, don't accumulate.
        "replace_existing_checks": True,
    }


class ConsulRegistration:
    """Registers one instance on start and deregisters it on stop."""

    def __init__(
        self,
        config: ServiceConfig,
        mesh: MeshSettings,
        client: Any | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self._config = config
        self._mesh = mesh
        self._metrics_port = metrics_port
        # The synchronous client (requests) in a worker thread: two calls per process
        # lifetime do not justify another HTTP stack in the event loop.
        self._client: Any = client or Consul(
            host=mesh.consul_host, port=mesh.consul_port, token=mesh.token()
        )

    async def register(self) -> None:
        payload = register_arguments(
            registration(self._config, self._mesh, self._metrics_port)
        )
        deadline = time.monotonic() + self._mesh.register_timeout
        delay = 0.1
        while True:
            try:
                await asyncio.to_thread(self._client.agent.service.register, **payload)
                break
            except Exception as error:  # requests/consul errors: agent not up (yet)
                if time.monotonic() + delay > deadline:
                    raise RuntimeError(
                        f"could not register {self._config.instance_id} with Consul at "
                        f"{self._mesh.consul_host}:{self._mesh.consul_port}: {error}"
                    ) from error
                log.info("consul.register_retry", error=str(error), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        log.info(
            "consul.registered",
            service_id=self._config.instance_id,
            sidecar_port=self._mesh.sidecar_port,
            upstreams=dict(self._config.upstreams),
        )

    async def deregister(self) -> None:
        # Also removes the sidecar registration (Consul ties it to its parent).
        await asyncio.to_thread(self._client.agent.service.deregister, self._config.instance_id)
        log.info("consul.deregistered", service_id=self._config.instance_id)


def mesh_hooks(
    config: ServiceConfig,
    env: Mapping[str, str] | None = None,
    *,
    metrics_port: int | None = None,
) -> tuple[list[Hook], list[Hook]]:
    """(on_start, on_stop) hooks for serve(): register/deregister when the mesh is on,
    nothing otherwise."""
    mesh = load_mesh_settings(env)
    if mesh is None:
        return [], []
    reg = ConsulRegistration(config, mesh, metrics_port=metrics_port)
    return [reg.register], [reg.deregister]
