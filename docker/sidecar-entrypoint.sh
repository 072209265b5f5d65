#!/bin/sh
# The sidecar container's entry point (docker/sidecar.Dockerfile):
#   sidecar-entrypoint <instance-id> [consul connect envoy flags] [-- envoy flags]
# CONSUL_HTTP_ADDR and CONSUL_GRPC_ADDR (docker-compose.yml) say where Consul is.
# SIDECAR_ENVOY_FRAGMENT names a file of Envoy bootstrap (JSON) given to Envoy as
# --config-yaml: the retry circuit breaker's runtime layer that tools/compose/retries.py
# derives as tools/mesh/sidecar.py does for `make up`.
#
# The instance registers itself, with its sidecar, once it is SERVING; until then
# `consul connect envoy -sidecar-for` fails at once. So: wait for the registration
# (the same job tools/mesh/sidecar.py does for `make up`), then run consul connect envoy,
# which execs Envoy; this shell stays as PID 1 to pass Docker's signals on to Envoy and
# to notice the pod going away (below).
set -eu
instance=${1:?usage: sidecar-entrypoint <instance-id> [flags]}
shift
wait_seconds=${SIDECAR_WAIT_SECONDS:-120}
fragment=${SIDECAR_ENVOY_FRAGMENT:-}
if [ -n "$fragment" ]; then
  if [ -s "$fragment" ]; then
    case " $* " in *" -- "*) ;; *) set -- "$@" -- ;; esac
    set -- "$@" --config-yaml "$(cat "$fragment")"
  else
    echo "sidecar: $fragment is missing; Envoy keeps its default retry circuit breaker" >&2
  fi
fi
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
consul connect envoy -sidecar-for "$instance" "$@" &
envoy=$!  # consul connect envoy execs Envoy: this is Envoy's pid
trap 'kill -TERM "$envoy" 2>/dev/null' TERM INT
# The pod's network namespace is the instance container's. When that container stops or
# dies, the engine removes the namespace's interface but leaves this container running
# in it, cut off, with its healthcheck (the admin on the pod's loopback) still passing.
# So once the interface is gone, Envoy is stopped and the container exits 75 (EX_TEMPFAIL):
# started again (restart policy, `docker compose up -d`; with podman,
# tools/compose/engine.py), it joins the instance's new namespace.
iface=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") { print $1; exit } }' /proc/net/dev)
while kill -0 "$envoy" 2>/dev/null; do
  if [ -n "$iface" ] && ! grep -q "^ *$iface:" /proc/net/dev; then
    echo "sidecar: $iface is gone (the pod $instance stopped); stopping Envoy" >&2
    kill -TERM "$envoy"
    wait "$envoy" || true
    exit 75
  fi
  sleep 1
done
wait "$envoy"
