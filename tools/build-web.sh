#!/usr/bin/env bash
# The storefront (web/): npm ci from the committed lockfile, then `npm run build` (tsc
# type check + Vite) into web/dist, which the edge serves at / (tools/mesh/edge/web.py).
# A no-op when web/dist was built from the same sources and lockfile (sha256 stamp).
# Without node/npm it says what to do; the edge then serves a "not built" page.
#   usage: tools/build-web.sh [--missing]   (--missing: exit 0 when there is a build to do)
set -euo pipefail
cd "$(dirname "$0")/../web"
if [ "${1:-}" = --missing ] && ! command -v npm >/dev/null; then
  exit 1
fi
if ! command -v npm >/dev/null; then
  echo "notice: npm is missing; the storefront (web/) is not built: install Node.js 20+ and run make setup"
  exit 0
fi
sources() {
  find src public index.html vite.config.ts tsconfig.json package.json package-lock.json \
    -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
}
want=$( (sources; node --version) | sha256sum | cut -d' ' -f1)
if [ "${1:-}" = --missing ]; then
  [ "$(cat dist/.sources.sha256 2>/dev/null)" != "$want" ]
  exit
fi
[ "$(cat dist/.sources.sha256 2>/dev/null)" = "$want" ] && exit 0

lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lock.sha256 2>/dev/null)" != "$lock" ]; then
  echo "==> installing the storefront's npm packages (web/, npm ci from package-lock.json)..."
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" > node_modules/.lock.sha256
fi
echo "==> building the storefront (web/: tsc + vite build -> web/dist)..."
start=$SECONDS
npm run --silent build -- --logLevel warn
echo "$want" > dist/.sources.sha256
echo "    web/dist built in $((SECONDS - start))s: $(du -sh dist | cut -f1) ($(ls dist/assets | tr '\n' ' '))"
