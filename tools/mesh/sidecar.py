"""Start a sidecar once its instance is registered: `python -m tools.mesh.sidecar`.

    python -m tools.mesh.sidecar --consul http://127.0.0.1:8500 \
        --sidecar-service catalog-sidecar-proxy --sidecar-id catalog-1-sidecar-proxy \
        -- consul connect envoy -sidecar-for catalog-1 ...

The service instance registers itself (and so its sidecar service) when it starts;
`consul connect envoy -sidecar-for` fails at once if that has not happened yet. This
shim waits for the registration with Consul blocking queries (no polling sleep), then
*replaces itself* with the command (exec), so supervisord's pid is Envoy's pid and its
signals go straight to Envoy. If the registration does not show up before the deadline
it exits 1 and supervisord starts it again.

Before the exec it adds one Envoy runtime layer (``--config-yaml``, merged into Consul's
bootstrap) raising the retry circuit breaker of each of the sidecar's upstream clusters:
see ``MAX_RETRIES``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tools.mesh.cli import exec_binary
from tools.mesh.http import HTTPFailure, get_json, request

# Retries in flight per upstream cluster. Envoy's default (its max_retries circuit
# breaker) is 3 and Consul 1.14 has no config-entry field for it. When an instance dies,
# every call in flight to it fails at once and each needs its retry: at 200 RPC/s with
# tens of ms of latency (a loaded two-core box) that is more than 3, and the calls beyond
# the third surfaced as UNAVAILABLE (tests/chaos, kill -9 under load). Retries are
# requests too, so the caller's MaxConcurrentRequests (its service-defaults
# UpstreamConfig) and NumRetries (the callee's service-router) still bound a retry storm.
# Set through Envoy's runtime key circuit_breakers.<cluster>.default.max_retries.
MAX_RETRIES = 32


def registered(
    consul: str, service: str, sidecar_id: str, deadline: float, token: str | None = None
) -> bool:
    """Block until the catalog lists ``sidecar_id`` under the sidecar service name
    ``service`` (<service>-sidecar-proxy) or the deadline passes."""
    index = "0"
    while (remaining := deadline - time.monotonic()) > 0:
        wait = max(1, min(int(remaining), 10))
        query = urllib.parse.urlencode({"index": index, "wait": f"{wait}s"})
        url = f"{consul}/v1/catalog/service/{urllib.parse.quote(service)}?{query}"
        try:
            body, headers = request(url, timeout=wait + 5, token=token)
        except HTTPFailure:
            # Agent not up yet (supervisord starts it alongside): try again shortly.
            time.sleep(0.2)
            continue
        index = headers.get("X-Consul-Index", "0")
        if any(entry.get("ServiceID") == sidecar_id for entry in _json(body)):
            return True
    return False


def retry_runtime_fragment(
    consul: str, upstreams: Iterable[str], token: str | None = None
) -> dict[str, Any]:
    """The Envoy bootstrap fragment (``--config-yaml``, merged into Consul's bootstrap)
    adding a runtime layer with MAX_RETRIES for every cluster of the destinations
    ``upstreams``: the discovery chain targets' names (= their SNI, which carries the
    mesh's trust domain) and their failover-target~ variants. Empty without upstreams.

    `make up` computes it as a sidecar starts (below); docker-compose.yml in a one-shot
    container once the config entries are written (tools/compose/retries.py)."""
    keys: dict[str, int] = {}
    for upstream in upstreams:
        name = urllib.parse.quote(upstream)
        chain = get_json(f"{consul}/v1/discovery-chain/{name}", token=token)["Chain"]
        for target in (chain.get("Targets") or {}).values():
            for cluster in (target["SNI"], f"failover-target~{target['SNI']}"):
                keys[f"circuit_breakers.{cluster}.default.max_retries"] = MAX_RETRIES
    if not keys:
        return {}
    layer = {"name": "meshmart-retries", "static_layer": keys}
    return {"layered_runtime": {"layers": [layer]}}


def retry_runtime_args(consul: str, sidecar_id: str, token: str | None = None) -> list[str]:
    """Envoy arguments with the retry fragment for the upstreams of the sidecar's
    registration (none when it has no upstreams)."""
    url = f"{consul}/v1/agent/service/{urllib.parse.quote(sidecar_id)}"
    proxy = get_json(url, token=token)["Proxy"]
    names = [upstream["DestinationName"] for upstream in proxy.get("Upstreams") or []]
    fragment = retry_runtime_fragment(consul, names, token)
    return ["--config-yaml", json.dumps(fragment)] if fragment else []


def _json(body: str) -> list[dict[str, object]]:
    value = json.loads(body)
    return value if isinstance(value, list) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mesh.sidecar")
    parser.add_argument("--consul", required=True, help="Consul HTTP URL")
    parser.add_argument("--sidecar-service", required=True, help="e.g. catalog-sidecar-proxy")
    parser.add_argument("--sidecar-id", required=True, help="e.g. catalog-1-sidecar-proxy")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--token-file", type=Path, help="Consul ACL token (the sidecar's own)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("missing the command to run after --")
    token = args.token_file.read_text().strip() if args.token_file else None
    if not registered(
        args.consul, args.sidecar_service, args.sidecar_id, time.monotonic() + args.timeout,
        token,
    ):
        sys.stderr.write(
            f"sidecar: {args.sidecar_id} is not registered in {args.consul} after "
            f"{args.timeout:.0f}s (is its service instance running?)\n"
        )
        return 1
    try:
        command += retry_runtime_args(args.consul, args.sidecar_id, token)
    except (HTTPFailure, KeyError) as error:  # Envoy's default retry budget then
        sys.stderr.write(f"sidecar: no retry runtime layer ({error})\n")
    exec_binary(f"sidecar: {args.sidecar_id} registered", command)


if __name__ == "__main__":
    sys.exit(main())
