"""Register NATS in Consul from a one-shot container: `python -m tools.compose.nats`.

Under `make up`, `python -m tools.mesh.nats run` registers nats-1 (with its sidecar and
the JetStream health check) and then execs nats-server. In docker-compose.yml the server
runs in the official NATS image, which has no Python, so this one-shot container (the
tools image) sends the very same registration (tools.mesh.nats) for the NATS pod's
address (MESHMART_NATS_ADDRESS) to Consul (MESHMART_CONSUL_HTTP_ADDR) and exits.
Consul keeps agent registrations in its data volume, so it runs once per `up`.
"""

from __future__ import annotations

import sys

from tools.compose.plan import plan_from_environment
from tools.mesh.nats import INSTANCE_ID, Nats, NatsError


def main() -> int:
    plan = plan_from_environment("MESHMART_NATS_ADDRESS")
    try:
        Nats(plan).register(timeout=60.0)
    except NatsError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    sys.stderr.write(f"nats: {INSTANCE_ID} at {plan.address} registered in {plan.consul_http}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
