# Defaults for every sidecar of the mesh.
Kind = "proxy-defaults"
Name = "global"

Config {
  # Every meshmart service speaks gRPC. "grpc" makes each listener HTTP/2-aware, so
  # service-routers (retries, timeouts) and L7 intentions (per gRPC method) apply and
  # Envoy multiplexes all requests to an instance over one connection.
  protocol = "grpc"

  # Prometheus: each sidecar serves /metrics on its own port, set in the instance's
  # registration (envoy_prometheus_bind_addr = <addr>:<gRPC port + 13000>, see
  # topology.toml [mesh] and services/kit/registration.py). It cannot be set here: one
  # global address would make every sidecar on this machine bind the same port.
}

AccessLogs {
  # One JSON line per request on the sidecar's stdout, which supervisord writes to
  # <run>/logs/<instance>-sidecar.log (`make logs S=<service>`): method, gRPC status,
  # duration, upstream host and the response flags that say *why* a call failed
  # (UO = circuit-breaker overflow, URX = retries exhausted, UH = no healthy host).
  Enabled = true
  Type    = "stdout"
  # Connection-level events too (mTLS handshake failures, L4 denials), not just requests.
  DisableListenerLogs = false
}
