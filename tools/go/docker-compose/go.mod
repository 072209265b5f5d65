// Wrapper module pinning docker compose v2 (github.com/docker/compose/v2/cmd) for
// `make setup` (tools/bootstrap-go.sh). There is no Docker engine here: the binary only
// validates docker-compose.yml (`docker-compose config --quiet`, the v2 binary also runs
// standalone). `go install ...@v2.40.3` refuses the module because its go.mod has
// exclude directives; a wrapper module repeats them and builds it.
module meshmart/tools/docker-compose

go 1.24.9

require github.com/docker/compose/v2 v2.40.3

exclude (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2
)
