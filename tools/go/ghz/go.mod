// Wrapper module pinning github.com/bojand/ghz/cmd/ghz for `make setup` (tools/bootstrap-go.sh).
module meshmart/tools/ghz

go 1.24

require github.com/bojand/ghz v0.120.0
