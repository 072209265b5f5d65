#!/usr/bin/env bash
# The project's own containers.conf for podman, ~/.cache/meshmart/containers/containers.conf
# (tools/compose/engine.py gives it as CONTAINERS_CONF; the machine's
# /etc/containers/containers.conf is not touched): runc, not crun (crun refuses this kind
# of machine's hybrid cgroups), and ulimits within the machine's hard limits (podman's
# defaults try to raise them, which fails). podman itself: tools/install-apt.sh containers.
#   usage: tools/install-containers.sh
set -euo pipefail
conf_dir=${MESHMART_CACHE:-$HOME/.cache/meshmart}/containers
want='# Written by tools/install-containers.sh (make setup); given to podman as CONTAINERS_CONF.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"'
mkdir -p "$conf_dir"
[ "$(cat "$conf_dir/containers.conf" 2>/dev/null)" = "$want" ] || echo "$want" > "$conf_dir/containers.conf"
