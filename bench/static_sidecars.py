"""The Consul sidecar pair's configuration as two static bootstraps, and the ablation.

bench/sidecar_cost.py takes the caller's and the callee's ``/config_dump?include_eds``
(what Consul gave each sidecar: its bootstrap, and the listeners, routes, clusters and
endpoints it pushed over xDS) and turns them into two static bootstraps of the same
Envoys (``static_pair``): the dynamic resources inlined, EDS endpoints written out, RDS
routes inlined, the redacted private keys put back from the Consul agent's leaf
certificates, every port moved to a free one (the caller's upstream cluster then points
at the static callee). Run as a bench/bare_pair.py EnvoyPair, such a copy should cost
what the Consul pair costs; then ``ABLATIONS`` remove one thing at a time from both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.bare_pair import EnvoyPair, fresh_port, socket_address

Bootstrap = dict[str, Any]


@dataclass(frozen=True)
class Leaf:
    """A service's Connect leaf certificate and key (Consul's agent API)."""

    cert_pem: str
    key_pem: str


def _configs(dump: dict[str, Any], suffix: str) -> dict[str, Any]:
    for config in dump.get("configs", []):
        if config.get("@type", "").endswith(f".{suffix}"):
            return dict(config)
    return {}



def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A resource out of the dump as a bootstrap field (not an Any: no @type)."""
    return {k: v for k, v in copy.deepcopy(message).items() if k != "@type"}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def static_bootstrap(dump: dict[str, Any], leaf: Leaf) -> Bootstrap:
    """One sidecar's whole configuration as a static bootstrap (ports as they were)."""
    boot: Bootstrap = copy.deepcopy(_configs(dump, "BootstrapConfigDump")["bootstrap"])
    boot.pop("dynamic_resources", None)
    # What Envoy itself adds to the node it reports (its build, its extensions): not config.
    boot["node"] = {k: v for k, v in boot["node"].items() if k in ("id", "cluster", "metadata")}
    static = boot.setdefault("static_resources", {})
    clusters_dump = _configs(dump, "ClustersConfigDump")
    endpoints = {
        e["endpoint_config"]["cluster_name"]: e["endpoint_config"]
        for e in _configs(dump, "EndpointsConfigDump").get("dynamic_endpoint_configs", [])
    }
    clusters = [_plain(c["cluster"]) for c in clusters_dump.get("static_clusters", [])]
    for item in clusters_dump.get("dynamic_active_clusters", []):
        cluster = _plain(item["cluster"])
        if cluster.get("type") == "EDS":
            cluster["type"] = "STATIC"
            cluster.pop("eds_cluster_config", None)
            assignment = _plain(endpoints[cluster["name"]])
            for group in assignment.get("endpoints", []):
                if not group.get("load_balancing_weight"):  # the dump's 0: not set
                    group.pop("load_balancing_weight", None)
                for lb in group.get("lb_endpoints", []):
                    lb.pop("health_status", None)  # STATIC: every endpoint is healthy
            cluster["load_assignment"] = assignment
        clusters.append(cluster)
    static["clusters"] = clusters
    routes = {
        r["route_config"]["name"]: _plain(r["route_config"])
        for r in _configs(dump, "RoutesConfigDump").get("dynamic_route_configs", [])
    }
    listeners_dump = _configs(dump, "ListenersConfigDump")
    listeners = [_plain(s["listener"]) for s in listeners_dump.get("static_listeners", [])]
    for item in listeners_dump.get("dynamic_listeners", []):
        listener = (item.get("active_state") or {}).get("listener")
        if listener:
            listeners.append(_plain(listener))
    for listener in listeners:
        for node in _walk(listener):
            if "rds" in node and "stat_prefix" in node:  # an HTTP connection manager
                node["route_config"] = routes[node.pop("rds")["route_config_name"]]
    static["listeners"] = listeners
    for node in _walk(boot):
        for cert in node.get("tls_certificates") or []:
            cert["certificate_chain"] = {"inline_string": leaf.cert_pem}
            cert["private_key"] = {"inline_string": leaf.key_pem}
    return boot


def _rebind(boot: Bootstrap, host: str, keep: dict[str, int]) -> None:
    """Every listener and the admin API to a free port on ``host`` (those named in
    ``keep``, by name prefix, to the port given)."""
    boot["admin"]["address"] = socket_address(host, fresh_port(host))
    for listener in boot["static_resources"]["listeners"]:
        port = next((p for name, p in keep.items() if listener["name"].startswith(name)), None)
        listener["address"] = socket_address(host, port or fresh_port(host))


def static_pair(name: str, run_dir: Any, host: str, caller_dump: dict[str, Any],
                callee_dump: dict[str, Any], caller_leaf: Leaf, callee_leaf: Leaf,
                upstream: str, change: Callable[[Bootstrap, Bootstrap], None] | None = None,
                ) -> EnvoyPair:
    """The Consul pair as static Envoys on free ports of ``host``: a client dials the
    caller's listener for ``upstream``; its upstream cluster points at the static callee's
    public listener. ``change`` alters both bootstraps (an ablation)."""
    caller = static_bootstrap(caller_dump, caller_leaf)
    callee = static_bootstrap(callee_dump, callee_leaf)
    entry, public = fresh_port(host), fresh_port(host)
    _rebind(caller, host, {f"{upstream}:": entry})
    _rebind(callee, host, {"public_listener:": public})
    for cluster in caller["static_resources"]["clusters"]:
        if cluster["name"].startswith(f"{upstream}."):
            for node in _walk(cluster.get("load_assignment", {})):
                if "socket_address" in node:
                    node["socket_address"] = {"address": host, "port_value": public}
    if change is not None:
        change(caller, callee)
    return EnvoyPair(name, run_dir, caller, callee, f"{host}:{entry}")


# --------------------------------------------------------------------------- ablations


def _each(caller: Bootstrap, callee: Bootstrap) -> Iterator[dict[str, Any]]:
    yield from _walk(caller)
    yield from _walk(callee)


def _managers(caller: Bootstrap, callee: Bootstrap) -> Iterator[dict[str, Any]]:
    for node in _each(caller, callee):
        if "stat_prefix" in node and "http_filters" in node:
            yield node


def _clusters(caller: Bootstrap, callee: Bootstrap) -> Iterator[dict[str, Any]]:
    for boot in (caller, callee):
        yield from boot["static_resources"]["clusters"]


def drop_http_filter(name: str) -> Callable[[Bootstrap, Bootstrap], None]:
    def change(caller: Bootstrap, callee: Bootstrap) -> None:
        for hcm in _managers(caller, callee):
            hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != name]
    return change


def no_tracing(caller: Bootstrap, callee: Bootstrap) -> None:
    for boot in (caller, callee):
        boot.pop("tracing", None)
    for hcm in _managers(caller, callee):
        hcm.pop("tracing", None)


def no_stats_tags(caller: Bootstrap, callee: Bootstrap) -> None:
    for boot in (caller, callee):
        boot.pop("stats_config", None)
        boot.pop("stats_sinks", None)


def no_prometheus(caller: Bootstrap, callee: Bootstrap) -> None:
    for boot in (caller, callee):
        static = boot["static_resources"]
        static["listeners"] = [lis for lis in static["listeners"]
                               if "prometheus" not in lis["name"]]


def no_tls(caller: Bootstrap, callee: Bootstrap) -> None:
    """Plain HTTP/2 between the two; the RBAC filter goes too (its principals are the
    peer certificate's)."""
    for node in _each(caller, callee):
        node.pop("transport_socket", None)
        node.pop("transport_socket_matches", None)
    drop_http_filter("envoy.filters.http.rbac")(caller, callee)
    for hcm in _managers(caller, callee):
        hcm.pop("forward_client_cert_details", None)
        hcm.pop("set_current_client_cert_details", None)


def no_xfcc(caller: Bootstrap, callee: Bootstrap) -> None:
    for hcm in _managers(caller, callee):
        hcm.pop("forward_client_cert_details", None)
        hcm.pop("set_current_client_cert_details", None)


CLUSTER_LIMITS = ("circuit_breakers", "outlier_detection", "upstream_connection_options",
                  "per_connection_buffer_limit_bytes", "common_lb_config")


def no_cluster_limits(caller: Bootstrap, callee: Bootstrap) -> None:
    for cluster in _clusters(caller, callee):
        for key in CLUSTER_LIMITS:
            cluster.pop(key, None)


def no_runtime_layer(caller: Bootstrap, callee: Bootstrap) -> None:
    for boot in (caller, callee):
        boot.pop("layered_runtime", None)


def no_route_policy(caller: Bootstrap, callee: Bootstrap) -> None:
    """The routes without the retry policy and timeouts (router to the cluster only)."""
    for node in _each(caller, callee):
        if "cluster" in node and ("retry_policy" in node or "timeout" in node):
            for key in ("retry_policy", "timeout", "idle_timeout"):
                node.pop(key, None)


def plain_http2_options(caller: Bootstrap, callee: Bootstrap) -> None:
    """HTTP/2 options at Envoy's defaults, on the listeners and on the clusters."""
    for node in _each(caller, callee):
        if "http2_protocol_options" in node:
            node["http2_protocol_options"] = {}


def no_manager_options(caller: Bootstrap, callee: Bootstrap) -> None:
    """The connection managers with only codec, routes and filters: no tracing, XFCC,
    upgrades, path normalisation, header options, access log."""
    keep = {"@type", "stat_prefix", "route_config", "http_filters", "codec_type",
            "http2_protocol_options"}
    for hcm in _managers(caller, callee):
        for key in [k for k in hcm if k not in keep]:
            hcm.pop(key)


def minimal(caller: Bootstrap, callee: Bootstrap) -> None:
    """Everything above at once (TLS kept)."""
    for change in (no_tracing, no_stats_tags, no_prometheus, no_xfcc, no_cluster_limits,
                   no_runtime_layer, no_route_policy, plain_http2_options, no_manager_options,
                   drop_http_filter("envoy.filters.http.grpc_stats"),
                   drop_http_filter("envoy.filters.http.grpc_http1_bridge"),
                   drop_http_filter("envoy.filters.http.rbac")):
        change(caller, callee)


def minimal_no_tls(caller: Bootstrap, callee: Bootstrap) -> None:
    """minimal, and plain HTTP/2 between the two: close to the bare pair."""
    minimal(caller, callee)
    no_tls(caller, callee)


ABLATIONS: dict[str, Callable[[Bootstrap, Bootstrap], None] | None] = {
    "static": None,  # the copy as it is
    "static-no-tracing": no_tracing,
    "static-no-stats-tags": no_stats_tags,
    "static-no-prometheus": no_prometheus,
    "static-no-rbac": drop_http_filter("envoy.filters.http.rbac"),
    "static-no-grpc-stats": drop_http_filter("envoy.filters.http.grpc_stats"),
    "static-no-http1-bridge": drop_http_filter("envoy.filters.http.grpc_http1_bridge"),
    "static-no-xfcc": no_xfcc,
    "static-no-tls": no_tls,
    "static-no-cluster-limits": no_cluster_limits,
    "static-no-runtime-layer": no_runtime_layer,
    "static-no-route-policy": no_route_policy,
    "static-plain-http2": plain_http2_options,
    "static-no-manager-options": no_manager_options,
    "static-minimal": minimal,
    "static-minimal-no-tls": minimal_no_tls,
}
