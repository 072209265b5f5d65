#!/usr/bin/env bash
# A Debian package a profile of `make setup` needs, installed with apt-get when it is
# missing and we may (root); otherwise says what to do and goes on.
#   chromium  the browser tests (tests/observability/test_console_browser.py; Playwright
#             drives Debian's chromium, not a browser of its own)
#   wrk       `make bench` (bench/edge_rest_vs_grpc.py: HTTP load through the edge)
#   usage: tools/install-apt.sh chromium|wrk
set -euo pipefail
package=${1:?usage: tools/install-apt.sh chromium|wrk}
case "$package" in
  chromium) binary=/usr/bin/chromium; why="the browser tests need it" ;;
  wrk) binary=/usr/bin/wrk; why="make bench needs it (the edge benchmark)" ;;
  *) echo "error: tools/install-apt.sh knows chromium and wrk, not $package" >&2; exit 2 ;;
esac
[ -x "$binary" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "notice: $binary is missing; $why:"
  echo "        sudo apt-get install $package   (Debian/Ubuntu)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$package" >/dev/null
echo "    $("$binary" --version 2>&1 | head -1) installed"
