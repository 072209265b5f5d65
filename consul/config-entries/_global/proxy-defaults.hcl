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

# Access logs: NOT here. Consul 1.14.11 has no AccessLogs in proxy-defaults (it arrived
# in 1.15, which cannot be built from the module proxy; see the recipe):
#   consul config write proxy-defaults.hcl
#   -> Failed to decode config entry input: * invalid config key "AccessLogs"
# The only 1.14 way is envoy_public_listener_json, which replaces Consul's generated
# listener and so drops L7 intentions. Per-request visibility instead: the services'
# structured logs (request id, method, code, duration) and Envoy's per-upstream counters
# (`make status`, /stats: retries, overflows, ejections, response codes).
