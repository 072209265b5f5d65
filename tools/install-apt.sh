#!/usr/bin/env bash
# Debian packages a profile of `make setup` needs, installed with apt-get when missing
# and we may (root); otherwise says what to do and goes on.
#   chromium    the browser tests (tests/observability/test_console_browser.py; Playwright
#               drives Debian's chromium, not a browser of its own)
#   postgresql  Debian's PostgreSQL 15 server (postgresql-15; only the client comes with
#               the machine): the tests on PostgreSQL start a cluster of their own with its
#               initdb and postgres (harness/postgres.py, tools/postgres.py)
#   wrk         `make bench` (bench/edge_rest_vs_grpc.py: HTTP load through the edge)
#   containers  podman, runc, debootstrap and CNI's dnsname plugin (containers find each
#               other by service name): tests/compose and `make compose-up` run
#               docker-compose.yml in real containers (tools/compose/engine.py)
#   usage: tools/install-apt.sh chromium|postgresql|wrk|containers [--missing]
#          (--missing: exit 0 when something is to install, 1 when all is there)
set -euo pipefail
what=${1:?usage: tools/install-apt.sh chromium|postgresql|wrk|containers [--missing]}
case "$what" in
  chromium) packages=(chromium); binaries=(/usr/bin/chromium); why="the browser tests need it" ;;
  postgresql)
    packages=(postgresql-15); binaries=(/usr/lib/postgresql/15/bin/postgres)
    why="the tests on PostgreSQL need its server (initdb, postgres); without it they fail saying so" ;;
  wrk) packages=(wrk); binaries=(/usr/bin/wrk); why="make bench needs it (the edge benchmark)" ;;
  containers)
    packages=(podman runc debootstrap golang-github-containernetworking-plugin-dnsname)
    binaries=(/usr/bin/podman /usr/sbin/runc /usr/sbin/debootstrap /usr/lib/cni/dnsname)
    why="make compose-up and tests/compose need them (or Docker Engine 25+ with compose)" ;;
  *) echo "error: tools/install-apt.sh knows chromium, postgresql, wrk and containers, not $what" >&2; exit 2 ;;
esac
missing_now() {
  missing=()
  for i in "${!packages[@]}"; do [ -x "${binaries[$i]}" ] || missing+=("${packages[$i]}"); done
}
missing_now
if [ "${2:-}" = "--missing" ]; then
  [ "${#missing[@]}" -gt 0 ]
  exit
fi
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "notice: ${missing[*]} missing; $why:"
  echo "        sudo apt-get install ${missing[*]}   (Debian/Ubuntu)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Two setups at once (two checkouts) take turns: apt-get update does not wait for the
# lock of the package lists another one holds (DPkg::Lock::Timeout covers dpkg's lock
# only), so the whole update and install runs under a lock of our own, and what is
# missing is looked at again once it is ours (the other setup may have installed it).
exec 9>/var/lock/meshmart-apt.lock
flock 9
missing_now
[ "${#missing[@]}" -eq 0 ] && exit 0
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "    ${missing[*]} installed"
