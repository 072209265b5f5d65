#!/bin/sh
# The entrypoint of the local Consul image (docker/local.Dockerfile, stage consul), as the
# official image's: `agent ...` gets the data directory (/consul/data, a volume), a flag
# or a subcommand gets `consul` in front, anything else runs as given.
set -e
if [ "${1:-}" = agent ]; then
  shift
  set -- consul agent -data-dir=/consul/data "$@"
fi
case "${1:-}" in
  -*|members|config|connect|operator|kv|catalog|info|version) set -- consul "$@" ;;
esac
exec "$@"
