// Wrapper module pinning promtool of Prometheus 3 (the same module as tools/go/prometheus)
// for `make setup` (tools/bootstrap-go.sh): checks config and rules, runs rule unit tests.
module meshmart/tools/promtool

go 1.26.7

require github.com/prometheus/prometheus v0.316.0
