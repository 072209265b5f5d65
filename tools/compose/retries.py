"""The compose sidecars' retry circuit breaker: `python -m tools.compose.retries`.

    python -m tools.compose.retries <dir> <instance>=<upstream>,<upstream> ... <instance>=

Under `make up`, tools/mesh/sidecar.py raises each sidecar's Envoy max_retries circuit
breaker (MAX_RETRIES) with a runtime layer derived from the discovery chains of its
upstreams, just before it execs `consul connect envoy`. The cluster names in that layer
carry the mesh's trust domain (the Consul CA's cluster id), which exists only once
Consul runs, and the sidecar image (the official Envoy's) has no Python. So in
docker-compose.yml this one-shot container (the tools image) runs the same derivation
(tools.mesh.sidecar.retry_runtime_fragment) once the config entries are written, for
every sidecar of the file (each instance's upstreams are given as the command, written
by tools/compose/model.py), and leaves ``<dir>/<instance>.json`` in a volume that every
sidecar mounts; docker/sidecar-entrypoint.sh hands it to Envoy as ``--config-yaml``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tools.mesh.http import HTTPFailure, get_json
from tools.mesh.sidecar import retry_runtime_fragment

TRUST_DOMAIN_TIMEOUT = 60.0


def trust_domain(consul: str, timeout: float = TRUST_DOMAIN_TIMEOUT) -> str:
    """The mesh's trust domain, once the Connect CA has one (the chains' SNI carry it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            domain = str(get_json(f"{consul}/v1/connect/ca/roots").get("TrustDomain") or "")
        except HTTPFailure:
            domain = ""
        if domain:
            return domain
        if time.monotonic() > deadline:
            raise SystemExit(f"error: Consul at {consul} has no Connect trust domain after "
                             f"{timeout:.0f} s")
        time.sleep(0.5)


def parse(specs: list[str]) -> dict[str, list[str]]:
    """``<instance>=<upstream>,...`` -> instance -> its upstreams."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        instance, sep, names = spec.partition("=")
        if not sep or not instance:
            raise SystemExit(f"error: {spec!r} is not <instance>=<upstream>,...")
        out[instance] = [name for name in names.split(",") if name]
    return out


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    directory, sidecars = Path(args[0]), parse(args[1:])
    consul = f"http://{os.environ.get('MESHMART_CONSUL_HTTP_ADDR', 'consul:8500')}"
    domain = trust_domain(consul)
    for instance, upstreams in sorted(sidecars.items()):
        fragment = retry_runtime_fragment(consul, upstreams)
        partial = directory / f"{instance}.json.partial"
        partial.write_text(json.dumps(fragment))
        partial.replace(directory / f"{instance}.json")
        keys = len(fragment["layered_runtime"]["layers"][0]["static_layer"]) if fragment else 0
        sys.stderr.write(f"retries: {instance}: {keys} runtime keys "
                         f"({', '.join(upstreams) or 'no upstreams'})\n")
    sys.stderr.write(f"retries: {len(sidecars)} sidecars, trust domain {domain}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
