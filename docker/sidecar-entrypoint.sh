#!/bin/sh
# The sidecar container's entry point (docker/sidecar.Dockerfile):
#   sidecar-entrypoint <instance-id> [consul connect envoy flags] [-- envoy flags]
# CONSUL_HTTP_ADDR and CONSUL_GRPC_ADDR (docker-compose.yml) say where Consul is.
#
# The instance registers itself, with its sidecar, once it is SERVING; until then
# `consul connect envoy -sidecar-for` fails at once. So: wait for the registration
# (the same job tools/mesh/sidecar.py does for `make up`), then *become* consul connect
# envoy, which execs Envoy: Docker's signals reach Envoy directly.
set -eu
instance=${1:?usage: sidecar-entrypoint <instance-id> [flags]}
shift
wait_seconds=${SIDECAR_WAIT_SECONDS:-120}
waited=0
# -bootstrap only prints Envoy's bootstrap config: it succeeds once the sidecar is known.
until consul connect envoy -sidecar-for "$instance" -bootstrap "$@" >/dev/null 2>&1; do
  waited=$((waited + 1))
  if [ "$waited" -ge "$wait_seconds" ]; then
    echo "sidecar: no sidecar registered for $instance in Consul at $CONSUL_HTTP_ADDR after ${wait_seconds}s" >&2
    exec consul connect envoy -sidecar-for "$instance" -bootstrap "$@" >/dev/null
  fi
  sleep 1
done
echo "sidecar: $instance registered; starting Envoy" >&2
exec consul connect envoy -sidecar-for "$instance" "$@"
