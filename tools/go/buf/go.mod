// Wrapper module pinning github.com/bufbuild/buf/cmd/buf for `make setup` (tools/bootstrap-go.sh).
module meshmart/tools/buf

go 1.26.7

require github.com/bufbuild/buf v1.75.0
