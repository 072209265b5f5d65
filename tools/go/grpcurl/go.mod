// Wrapper module pinning github.com/fullstorydev/grpcurl/cmd/grpcurl for `make setup` (tools/bootstrap-go.sh).
module meshmart/tools/grpcurl

go 1.25.0

require github.com/fullstorydev/grpcurl v1.9.4
