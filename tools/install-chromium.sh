#!/usr/bin/env bash
# Debian's chromium, for the browser tests (tests/observability/test_console_browser.py,
# Playwright drives it; Playwright's own browser downloads are not used). Installed with
# apt-get when it is missing and we may (root); otherwise says what to do.
#   usage: tools/install-chromium.sh
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "notice: /usr/bin/chromium is missing; the browser tests need it:"
  echo "        sudo apt-get install chromium   (Debian/Ubuntu)"
  exit 0
fi
echo "==> installing Debian's chromium for the browser tests (apt-get, a minute)..."
start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "    $(/usr/bin/chromium --version 2>/dev/null) installed in $((SECONDS - start))s"
