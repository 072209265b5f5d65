// Wrapper module pinning github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 for `make setup` (tools/bootstrap-go.sh).
module meshmart/tools/protoc-gen-openapiv2

go 1.26.0

require github.com/grpc-ecosystem/grpc-gateway/v2 v2.33.0
