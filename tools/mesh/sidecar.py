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
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse

from tools.mesh.http import HTTPFailure, request


def registered(consul: str, service: str, sidecar_id: str, deadline: float) -> bool:
    """Block until the catalog lists ``sidecar_id`` under the sidecar service name
    ``service`` (<service>-sidecar-proxy) or the deadline passes."""
    index = "0"
    while (remaining := deadline - time.monotonic()) > 0:
        wait = max(1, min(int(remaining), 10))
        query = urllib.parse.urlencode({"index": index, "wait": f"{wait}s"})
        url = f"{consul}/v1/catalog/service/{urllib.parse.quote(service)}?{query}"
        try:
            body, headers = request(url, timeout=wait + 5)
        except HTTPFailure:
            # Agent not up yet (supervisord starts it alongside): try again shortly.
            time.sleep(0.2)
            continue
        index = headers.get("X-Consul-Index", "0")
        if any(entry.get("ServiceID") == sidecar_id for entry in _json(body)):
            return True
    return False


def _json(body: str) -> list[dict[str, object]]:
    value = json.loads(body)
    return value if isinstance(value, list) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mesh.sidecar")
    parser.add_argument("--consul", required=True, help="Consul HTTP URL")
    parser.add_argument("--sidecar-service", required=True, help="e.g. catalog-sidecar-proxy")
    parser.add_argument("--sidecar-id", required=True, help="e.g. catalog-1-sidecar-proxy")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("missing the command to run after --")
    if not registered(
        args.consul, args.sidecar_service, args.sidecar_id, time.monotonic() + args.timeout
    ):
        sys.stderr.write(
            f"sidecar: {args.sidecar_id} is not registered in {args.consul} after "
            f"{args.timeout:.0f}s (is its service instance running?)\n"
        )
        return 1
    sys.stderr.write(f"sidecar: {args.sidecar_id} registered; exec {command[0]}\n")
    sys.stderr.flush()
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
