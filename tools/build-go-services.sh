#!/usr/bin/env bash
# Builds every Go service (services/<name>/go.mod, e.g. services/recommendation-go) into a
# cache outside the repository, keyed by a hash of its sources and of the generated
# stubs it uses (gen/go), and links it as .venv/bin/<name>. Part of `make setup`: when
# nothing changed it only hashes a few dozen files (well under a second).
#   usage: tools/build-go-services.sh [name ...]   (default: every Go service)
#          tools/build-go-services.sh --missing       prints the services not built yet
source "$(dirname "$0")/go-build.sh"
go_cache services "meshmart builds its Go services with it."

# What a build depends on: the module's own files and the generated stubs it replaces
# in (../../gen/go). Paths are part of the hash, so a renamed file rebuilds too.
source_hash() {
  find "$1" gen/go -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

every_service() {
  for mod in services/*/go.mod; do
    [ -e "$mod" ] && basename "$(dirname "$mod")"
  done
}

if [ "${1:-}" = --missing ]; then
  for name in $(every_service); do
    [ -x "$cache/$name-$(source_hash "services/$name")" ] || echo "$name"
  done
  exit 0
fi

exec 9>"$cache/.lock"
flock 9

names=("$@")
[ ${#names[@]} -gt 0 ] || mapfile -t names < <(every_service)
for name in "${names[@]}"; do
  dir="services/$name"
  # Older builds stay: another checkout sharing this cache (a CI clone, a worktree) may
  # still run the binary its own sources hash to.
  go_build "$name" "$dir" " (go build)" "$cache/$name-$(source_hash "$dir")" "$dir" "" .
done
