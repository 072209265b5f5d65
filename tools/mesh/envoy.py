"""Reading a sidecar's Envoy admin API: readiness, counters, per-host cluster state."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from tools.mesh.http import HTTPFailure, get_text


def ready(admin_url: str) -> str:
    """"LIVE" when the sidecar is serving, the state (e.g. "PRE_INITIALIZING") or "DOWN"."""
    try:
        return get_text(f"{admin_url}/ready", timeout=2).strip()
    except HTTPFailure as failure:
        # /ready answers 503 with the state while initializing.
        return failure.body.strip() if failure.status else "DOWN"


def stats(admin_url: str, pattern: str = "") -> dict[str, int]:
    """Counters and gauges whose name matches the regex ``pattern`` (histograms skipped)."""
    query = urllib.parse.urlencode({"filter": pattern}) if pattern else ""
    text = get_text(f"{admin_url}/stats?{query}", timeout=5)
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


# Regex of every Connect upstream cluster's stats (see cluster_pattern).
UPSTREAM_CLUSTERS = r"^cluster\.(?:failover-target~)?(?:[A-Za-z0-9_-]+\.)?[a-z-]+\.default\."


def cluster_pattern(service: str) -> str:
    """Regex of the names of the Connect upstream clusters of ``service``: usually one,
    ``<service>.default.<dc>.internal.<trust domain>.consul``; with resolver subsets
    (a canary split) one per subset, ``<subset>.<service>...``, and with failover the
    targets of its aggregate cluster, ``failover-target~<subset>.<service>...``."""
    return rf"(?:failover-target~)?(?:[A-Za-z0-9_-]+\.)?{re.escape(service)}\.default\."


def cluster_stat(counters: Mapping[str, int], service: str, suffix: str) -> int:
    """Sum of ``cluster.<service cluster>.<suffix>`` over the service's upstream clusters."""
    name = re.compile(rf"^cluster\.{cluster_pattern(service)}.*\.consul\.{re.escape(suffix)}$")
    return sum(v for k, v in counters.items() if name.match(k))


def upstream_stat(admin_url: str, service: str, suffix: str) -> int:
    counters = stats(admin_url, rf"^cluster\.{cluster_pattern(service)}")
    return cluster_stat(counters, service, suffix)


@dataclass(frozen=True)
class HostState:
    address: str  # host:port of the upstream instance's sidecar
    health_flags: str  # "healthy", or e.g. "/failed_outlier_check"
    rq_total: int
    rq_success: int
    rq_error: int
    cx_active: int  # connections the caller's sidecar holds open to it

    @property
    def healthy(self) -> bool:
        """Envoy routes to it: no EDS/outlier/active health flag set."""
        return self.health_flags == "healthy"

    @property
    def ejected(self) -> bool:
        return "failed_outlier_check" in self.health_flags


def hosts(admin_url: str, service: str) -> list[HostState]:
    """Each endpoint of the Connect upstream cluster(s) for ``service`` as Envoy sees it."""
    text = get_text(f"{admin_url}/clusters", timeout=5)
    cluster = re.compile(f"^{cluster_pattern(service)}")
    fields: dict[tuple[str, str], dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) != 4 or not cluster.match(parts[0]):
            continue
        name, host, key, value = parts
        if ":" not in host:  # cluster-wide lines such as default_priority::max_requests
            continue
        fields.setdefault((host, name), {})[key] = value
    # One entry per endpoint even when it is in several clusters (a subset and a failover
    # target): counts add up, and a flag set in any of them shows.
    merged: dict[str, HostState] = {}
    for (host, _), f in sorted(fields.items()):
        state = HostState(
            address=host,
            health_flags=f.get("health_flags", ""),
            rq_total=int(f.get("rq_total", "0")),
            rq_success=int(f.get("rq_success", "0")),
            rq_error=int(f.get("rq_error", "0")),
            cx_active=int(f.get("cx_active", "0")),
        )
        seen = merged.get(host)
        if seen is not None:
            state = HostState(
                address=host,
                health_flags=(
                    seen.health_flags if seen.health_flags != "healthy" else state.health_flags
                ),
                rq_total=seen.rq_total + state.rq_total,
                rq_success=seen.rq_success + state.rq_success,
                rq_error=seen.rq_error + state.rq_error,
                cx_active=seen.cx_active + state.cx_active,
            )
        merged[host] = state
    return [merged[host] for host in sorted(merged)]
