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


def cluster_stat(counters: Mapping[str, int], service: str, suffix: str) -> int:
    """Sum of ``cluster.<service>.<...>.consul.<suffix>`` (a Connect upstream cluster)."""
    prefix = f"cluster.{service}."
    return sum(
        v for k, v in counters.items() if k.startswith(prefix) and k.endswith(f".consul.{suffix}")
    )


def upstream_stat(admin_url: str, service: str, suffix: str) -> int:
    return cluster_stat(stats(admin_url, rf"^cluster\.{re.escape(service)}\."), service, suffix)


@dataclass(frozen=True)
class HostState:
    address: str  # host:port of the upstream instance's sidecar
    health_flags: str  # "healthy", or e.g. "/failed_outlier_check"
    rq_total: int
    rq_success: int
    rq_error: int

    @property
    def ejected(self) -> bool:
        return "failed_outlier_check" in self.health_flags


def hosts(admin_url: str, service: str) -> list[HostState]:
    """Each endpoint of the Connect upstream cluster for ``service`` as Envoy sees it."""
    text = get_text(f"{admin_url}/clusters", timeout=5)
    fields: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) != 4 or not parts[0].startswith(f"{service}."):
            continue
        _, host, key, value = parts
        if ":" not in host:  # cluster-wide lines such as default_priority::max_requests
            continue
        fields.setdefault(host, {})[key] = value
    return [
        HostState(
            address=host,
            health_flags=f.get("health_flags", ""),
            rq_total=int(f.get("rq_total", "0")),
            rq_success=int(f.get("rq_success", "0")),
            rq_error=int(f.get("rq_error", "0")),
        )
        for host, f in sorted(fields.items())
    ]
