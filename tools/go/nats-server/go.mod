// Wrapper module pinning github.com/nats-io/nats-server/v2 for `make setup` (tools/bootstrap-go.sh).
module meshmart/tools/nats-server

go 1.26.0

require github.com/nats-io/nats-server/v2 v2.15.2
