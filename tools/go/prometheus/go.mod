// Wrapper module pinning Prometheus 3 (module versions v0.3xx are the 3.x releases) for
// `make setup` (tools/bootstrap-go.sh). A module build has the HTTP API but no web UI.
// `tags`: only Consul service discovery is compiled in (no cloud SDKs: a faster build).
module meshmart/tools/prometheus

go 1.26.7

require github.com/prometheus/prometheus v0.316.0
