#!/usr/bin/env bash
# Builds every Go tool meshmart uses from its wrapper module in tools/go/<name>/
# (go.mod pins the version, go.sum makes the build reproducible) into a cache
# outside the repository, keyed by version, and links it into .venv/bin.
#   usage: tools/bootstrap-go.sh [name ...]   (default: every tool but the test-only ones)
#          tools/bootstrap-go.sh --missing name ...   prints the names not built yet
#          tools/bootstrap-go.sh --version name       prints the version it builds
#          tools/bootstrap-go.sh --prefetch name ...  downloads the modules their builds
#                                                     need, all at once (setup runs it in
#                                                     the background: a cold build spends
#                                                     about a minute of its time waiting
#                                                     on the network, consul's alone 50 s)
# A tool whose folder has a file named test-only (etcd, kube-apiserver: tests/k8s) is built
# only when named, as `make test` does (make test-servers), so `make up` never waits on it.
source "$(dirname "$0")/go-build.sh"
go_cache bin "meshmart builds consul, nats-server, grpcurl, ghz and buf with it." \
  "Install Go 1.26.7 or newer and run 'make setup' again."

# version of the module the tool comes from: the first requirement in its go.mod
version_of() { awk '/^require \(/ {block=1; next} block && NF>=2 {print $2; exit} /^require / {print $3; exit}' "$1/go.mod"; }

case "${1:-}" in
  --missing)
    shift
    for name in "$@"; do
      [ -x "$cache/$name-$(version_of "tools/go/$name")" ] || echo "$name"
    done
    exit 0 ;;
  --version) version_of "tools/go/$2"; exit 0 ;;
  --prefetch)
    shift
    # The go command locks the module cache per module, so these and a build that
    # starts meanwhile share it safely. Errors are left to the build, which says them.
    for name in "$@"; do
      dir="tools/go/$name"
      tags=""; [ -f "$dir/tags" ] && tags=$(cat "$dir/tags")
      (cd "$dir" && GOFLAGS=-mod=mod go list -tags "$tags" -deps "$(cat package)" >/dev/null 2>&1) &
    done
    wait
    exit 0 ;;
esac

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for dir in tools/go/*/; do
    [ -f "$dir/test-only" ] || names+=("$(basename "$dir")")
  done
fi
for name in "${names[@]}"; do
  dir="tools/go/$name"
  version=$(version_of "$dir")
  hint=""; [ "$name" = consul ] && hint=" (first run takes about 2 minutes)"
  [ "$name" = prometheus ] && hint=" (first run takes a few minutes)"
  [ "$name" = kube-apiserver ] && hint=" (first run takes about 20 minutes on 2 busy cores)"
  # An optional `tags` file: build tags, e.g. prometheus without the cloud discoveries.
  tags=""; [ -f "$dir/tags" ] && tags=$(cat "$dir/tags")
  GOFLAGS=-mod=mod go_build "$name" "$name $version" "$hint" "$cache/$name-$version" "$dir" \
    "Check that the Go module proxy is reachable ('go env GOPROXY') and run 'make setup' again." \
    -tags "$tags" "$(cat "$dir/package")"
done
