// Wrapper module pinning google.golang.org/grpc/cmd/protoc-gen-go-grpc for `make setup` (tools/bootstrap-go.sh).
module meshmart/tools/protoc-gen-go-grpc

go 1.24.0

require google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.0
