// Wrapper module pinning google.golang.org/protobuf/cmd/protoc-gen-go for `make setup` (tools/bootstrap-go.sh).
module meshmart/tools/protoc-gen-go

go 1.24

require google.golang.org/protobuf v1.36.11
