#!/usr/bin/env bash
# `make proto`: regenerates everything in gen/ from the contracts in proto/.
#   gen/python/meshmart/<svc>/v1/<svc>_pb2.py, _pb2_grpc.py, .pyi (+ __init__.py)
#   gen/go/meshmart/<svc>/v1/<svc>.pb.go, <svc>_grpc.pb.go   (module meshmart.local/gen/go;
#       go.mod/go.sum are maintained with `go mod tidy`, not written here)
#   gen/descriptors/meshmart.protoset   (imports + source info; Envoy transcoder, grpcurl)
#   gen/openapi/meshmart.swagger.json   (the REST face, all services merged, with the request
#       rules the contracts declare: tools/openapi_rules.py)
#
#   usage: tools/gen-proto.sh           regenerate gen/ (only changed files are rewritten)
#          tools/gen-proto.sh --check   regenerate into a temp dir; exit 1 listing every
#                                       stale, missing or extra file when gen/ differs
#
# protoc is the one bundled with grpcio-tools (pinned in requirements.txt) so no separate
# protoc install is needed; the Go plugins come from tools/bootstrap-go.sh. google/api
# annotations are vendored in proto/google/api; their Python modules come from the
# googleapis-common-protos package and their Go package from genproto, so they are
# never generated here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s%N)

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

py=.venv/bin/python
[ -x "$py" ] || { echo "error: $py missing; run 'make setup' first." >&2; exit 1; }
for plugin in protoc-gen-mypy protoc-gen-mypy_grpc protoc-gen-go protoc-gen-go-grpc protoc-gen-openapiv2; do
  if [ ! -x ".venv/bin/$plugin" ]; then
    echo "error: .venv/bin/$plugin missing; run 'make setup' (or tools/bootstrap-go.sh $plugin)." >&2
    exit 1
  fi
done

# Sorted, repo-relative list of our contracts: a stable input order keeps the output
# (descriptor set, merged OpenAPI) byte-identical from run to run.
mapfile -t protos < <(cd proto && find meshmart -name '*.proto' | LC_ALL=C sort)
[ ${#protos[@]} -gt 0 ] || { echo "error: no .proto files under proto/meshmart" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/meshmart-gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{python,go,descriptors,openapi}

# `python -m grpc_tools.protoc` adds the well-known types (google/protobuf/*) itself.
protoc() { (cd proto && "$root/$py" -m grpc_tools.protoc -I . "$@"); }

protoc \
  --plugin=protoc-gen-mypy="$root/.venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$root/.venv/bin/protoc-gen-mypy_grpc" \
  --python_out="$tmp/python" --grpc_python_out="$tmp/python" \
  --mypy_out="$tmp/python" --mypy_grpc_out="$tmp/python" \
  --mypy_opt=quiet --mypy_grpc_opt=quiet \
  "${protos[@]}"
# Regular packages (not namespace packages) so `from meshmart.catalog.v1 import catalog_pb2`
# resolves the same way for Python, mypy and pytest.
find "$tmp/python" -type d | while read -r dir; do
  [ "$dir" = "$tmp/python" ] || : > "$dir/__init__.py"
done

protoc \
  --plugin=protoc-gen-go="$root/.venv/bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$root/.venv/bin/protoc-gen-go-grpc" \
  --go_out="$tmp/go" --go_opt=paths=source_relative \
  --go-grpc_out="$tmp/go" --go-grpc_opt=paths=source_relative \
  "${protos[@]}"

protoc --include_imports --include_source_info \
  --descriptor_set_out="$tmp/descriptors/meshmart.protoset" \
  "${protos[@]}"

# One merged document. The merged document takes its `info` from one of the files, so
# every file gets the same title/version and the bearer-token scheme the edge enforces.
{
  echo "openapiOptions:"
  echo "  file:"
  for f in "${protos[@]}"; do
    cat <<YAML
    - file: "$f"
      option:
        info:
          title: meshmart REST API
          description: REST/JSON face of meshmart's gRPC services, served by the edge Envoy (gRPC-JSON transcoding). Field names are lowerCamelCase in JSON; proto names are accepted too.
          version: v1
        securityDefinitions:
          security:
            bearer:
              type: TYPE_API_KEY
              in: IN_HEADER
              name: Authorization
              description: "JWT from POST /api/v1/sessions, sent as 'Bearer <access_token>'"
YAML
  done
} > "$tmp/openapi-config.yaml"
protoc \
  --plugin=protoc-gen-openapiv2="$root/.venv/bin/protoc-gen-openapiv2" \
  --openapiv2_out="$tmp/openapi" \
  --openapiv2_opt=allow_merge=true,merge_file_name=meshmart,openapi_naming_strategy=simple \
  --openapiv2_opt=openapi_configuration="$tmp/openapi-config.yaml" \
  "${protos[@]}"
rm "$tmp/openapi-config.yaml"
# protoc-gen-openapiv2 does not read our field options (meshmart.options.v1.rules): state
# each field's request rules in the document, from the modules just generated.
PYTHONPATH="$tmp/python:$root" "$py" -m tools.openapi_rules \
  "$tmp/descriptors/meshmart.protoset" "$tmp/openapi/meshmart.swagger.json"

# Files in gen/ that this script owns: everything under these dirs except caches and the
# hand-maintained Go module files.
owned() {
  (cd "$1" && find python go descriptors openapi -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path 'go/go.mod' ! -path 'go/go.sum' \
      2>/dev/null | LC_ALL=C sort)
}

changed=()
while IFS= read -r f; do
  if [ ! -f "gen/$f" ]; then changed+=("gen/$f (missing)")
  elif ! cmp -s "$tmp/$f" "gen/$f"; then changed+=("gen/$f (out of date)")
  fi
done < <(owned "$tmp")
extra=()
while IFS= read -r f; do
  [ -f "$tmp/$f" ] || extra+=("gen/$f")
done < <(owned gen 2>/dev/null || true)

elapsed() { local ms=$((($(date +%s%N) - start) / 1000000)); printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }

if [ "$mode" = check ]; then
  if [ ${#changed[@]} -eq 0 ] && [ ${#extra[@]} -eq 0 ]; then
    echo "proto-check: gen/ is up to date with proto/ ($(elapsed))"
    exit 0
  fi
  echo "proto-check: gen/ is stale; run 'make proto' and commit the result." >&2
  for f in "${changed[@]}"; do echo "  $f" >&2; done
  for f in "${extra[@]}"; do echo "  $f (not generated from proto/: remove it)" >&2; done
  exit 1
fi

# Write mode: touch only files whose content changed (processes importing gen/python
# while this runs never see a half-written module: copy to a temp name, then rename).
n=0
while IFS= read -r f; do
  if [ ! -f "gen/$f" ] || ! cmp -s "$tmp/$f" "gen/$f"; then
    mkdir -p "$(dirname "gen/$f")"
    cp "$tmp/$f" "gen/$f.tmp.$$" && mv -f "gen/$f.tmp.$$" "gen/$f"
    n=$((n + 1))
  fi
done < <(owned "$tmp")
for f in "${extra[@]}"; do rm -f "$f"; n=$((n + 1)); done
find gen/python gen/go -type d -empty -delete 2>/dev/null || true
echo "proto: ${#protos[@]} contracts -> gen/ ($n files changed, $(elapsed))"
