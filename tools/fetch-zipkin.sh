#!/usr/bin/env bash
# Fetches the Zipkin server jar (traces with a UI; in-memory storage) from Maven Central
# into the cache, for `make up` to start beside the mesh (tools/mesh/observability.py).
# Needs java and mvn; without them it says so and the mesh runs without Zipkin (spans
# are then not exported; everything else works).
#   usage: tools/fetch-zipkin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^ZIPKIN_VERSION = "\(.*\)"$/\1/p' tools/mesh/observability.py)
dir="${MESHMART_CACHE:-$HOME/.cache/meshmart}/zipkin"
jar="$dir/zipkin-server-$version-exec.jar"
[ -f "$jar" ] && exit 0
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  echo "notice: java or mvn not found: Zipkin $version is not fetched, so the mesh runs without"
  echo "        trace storage (install a JDK 17+ and Maven, then run 'make setup' again)."
  exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
[ -f "$jar" ] && exit 0
echo "==> fetching the Zipkin server $version jar (about 130 MB) from Maven Central with mvn..."
start=$SECONDS
# --no-transfer-progress keeps one line per artifact (progress without the byte counter).
if ! mvn --batch-mode --no-transfer-progress dependency:copy \
    -Dartifact="io.zipkin:zipkin-server:$version:jar:exec" \
    -DoutputDirectory="$dir.partial" -Dmdep.overWriteReleases=true \
    | sed -u 's/^/    /' | grep -E --line-buffered 'Downloaded|Copying|BUILD|ERROR' ; then
  echo "error: fetching Zipkin failed (see above); the mesh runs without it." >&2
  exit 1
fi
mv "$dir.partial/zipkin-server-$version-exec.jar" "$jar"
rmdir "$dir.partial" 2>/dev/null || true
echo "    zipkin $version fetched in $((SECONDS - start))s -> $jar"
