#!/usr/bin/env bash
# Fetches the Zipkin server jar (traces with a UI; in-memory storage) from Maven Central
# into the cache, for `make up` to start beside the mesh (tools/mesh/observability.py).
# Needs java and mvn; without them it says so and the mesh runs without Zipkin (spans
# are then not exported; everything else works).
#   usage: tools/fetch-zipkin.sh [--missing|--notice]
#     --missing  exit 0 when there is a jar to fetch (not there yet, java and mvn are), else 1
#     --notice   only the notice when java or mvn is missing
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^ZIPKIN_VERSION = "\(.*\)"$/\1/p' tools/mesh/observability.py)
dir="${MESHMART_CACHE:-$HOME/.cache/meshmart}/zipkin"
jar="$dir/zipkin-server-$version-exec.jar"
have_java() { command -v java >/dev/null && command -v mvn >/dev/null; }
case "${1:-}" in
  --missing) [ ! -f "$jar" ] && have_java; exit ;;
  --notice) [ -f "$jar" ] || have_java || set -- notice ;;
  *) [ -f "$jar" ] && exit 0; have_java || set -- notice ;;
esac
if [ "${1:-}" = notice ]; then
  echo "notice: java or mvn not found: Zipkin $version is not fetched, so the mesh runs without"
  echo "        trace storage (install a JDK 17+ and Maven, then run 'make setup' again)."
  exit 0
fi
[ "${1:-}" = --notice ] && exit 0
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
[ -f "$jar" ] && exit 0
# Under tools/setup.sh the numbered step line says it (MESHMART_SETUP_STEP).
[ -n "${MESHMART_SETUP_STEP:-}" ] || echo "==> fetching the Zipkin server $version jar (about 130 MB) with mvn..."
start=$SECONDS
# --no-transfer-progress keeps one line per artifact (progress without the byte counter).
if ! mvn --batch-mode --no-transfer-progress -Dstyle.color=never dependency:copy \
    -Dartifact="io.zipkin:zipkin-server:$version:jar:exec" \
    -DoutputDirectory="$dir.partial" -Dmdep.overWriteReleases=true \
    | sed -u 's/^/    /' | grep -E --line-buffered 'Downloaded|Copying|BUILD|ERROR' ; then
  echo "error: fetching Zipkin failed (see above); the mesh runs without it." >&2
  exit 1
fi
mv "$dir.partial/zipkin-server-$version-exec.jar" "$jar"
rmdir "$dir.partial" 2>/dev/null || true
[ -n "${MESHMART_SETUP_STEP:-}" ] || echo "    zipkin $version fetched in $((SECONDS - start))s -> $jar"
