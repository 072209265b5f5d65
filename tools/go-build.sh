# What tools/bootstrap-go.sh and tools/build-go-services.sh share; sourced by both, not run.
#   go_cache DIR WHAT...   the cache folder "$cache" (DIR under $MESHMART_CACHE, default
#                          ~/.cache/meshmart) and .venv/bin made; Go required (WHAT: the
#                          lines of the error that says what needs it)
#   go_build NAME LABEL HINT BIN DIR ADVICE [ARGS...]
#                          unless BIN is built: `go build -trimpath -ldflags="-s -w"
#                          -o BIN ARGS` in DIR
#                          (through BIN.partial, so a failed build leaves no BIN; BIN.lock
#                          keeps two checkouts from building it at once), saying
#                          "building LABEL HINT" unless tools/setup.sh's numbered step line
#                          (MESHMART_SETUP_STEP) says it, and ADVICE when it fails; then
#                          .venv/bin/NAME links to BIN
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

go_cache() {
  cache="${MESHMART_CACHE:-$HOME/.cache/meshmart}/$1"
  shift
  mkdir -p "$cache" .venv/bin
  if ! command -v go >/dev/null; then
    echo "error: Go is not installed; $1" >&2
    shift
    for line in "$@"; do echo "       $line" >&2; done
    exit 1
  fi
}

go_build() {
  local name=$1 label=$2 hint=$3 bin=$4 dir=$5 advice=$6
  shift 6
  # One build of a binary at a time: a second checkout's `make setup` waits for the
  # first's build of that very binary instead of building it twice, and never waits on a
  # binary it already has.
  if [ ! -x "$bin" ]; then
    local lock
    exec {lock}>"$bin.lock"
    flock "$lock"
  fi
  if [ ! -x "$bin" ]; then
    [ -n "${MESHMART_SETUP_STEP:-}" ] || echo "==> building $label$hint..."
    local start=$SECONDS
    # No symbol table or DWARF (-s -w): nobody debugs these binaries, and consul's link
    # takes half the time without them (5 s less here; 113 MB instead of 159). The
    # compiler then need not write DWARF either (-dwarf=false), and runs its garbage
    # collector less often (GOGC=400; its peak RSS was lower still, 1.4 GB): a cold consul
    # build takes 13 % less CPU (470 -> 410 s of user+sys, side by side: docs/design.md,
    # "Setup profiles").
    if ! (cd "$dir" && GOGC=400 go build -trimpath -gcflags=all=-dwarf=false \
            -ldflags="-s -w" -o "$bin.partial" "$@"); then
      echo "error: building $label failed (see the go output above)." >&2
      [ -z "$advice" ] || echo "       $advice" >&2
      exit 1
    fi
    mv "$bin.partial" "$bin"
    [ -n "${MESHMART_SETUP_STEP:-}" ] || echo "    $label built in $((SECONDS - start))s -> $bin"
  fi
  ln -sfn "$bin" ".venv/bin/$name"
}
