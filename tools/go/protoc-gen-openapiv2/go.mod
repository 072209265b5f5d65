// Wrapper module pinning github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 for `make setup` (tools/bootstrap.sh).
module meshmart/tools/protoc-gen-openapiv2

go 1.24

require github.com/grpc-ecosystem/grpc-gateway/v2 v2.33.0
