# The Consul agent of a local meshmart mesh: one server that is also the client every
# service registers with. `python -m tools.mesh up` starts it under supervisord as
#   consul agent -config-file consul/agent.hcl -data-dir <run>/consul
#                -bind <addr> -client <addr> -advertise <addr>
# so the address (127.0.0.1 for `make up`, another loopback address for the mesh
# tests) and the data directory are chosen per run; everything else is here.

# One server that elects itself: a dev-style single node, but with its data on disk
# under the run directory (CA, config entries, registrations survive a Consul restart
# by supervisord; `make up` from a stopped mesh starts from an empty directory).
server           = true
bootstrap_expect = 1
node_name        = "meshmart"
datacenter       = "dc1"

# Connect: the built-in CA issues every sidecar's mTLS certificate and Consul serves
# Envoy's configuration (xDS) over gRPC.
connect {
  enabled = true
}

ports {
  http = 8500
  # Plaintext xDS for the sidecars (`consul connect envoy -grpc-addr <addr>:8502`).
  grpc = 8502
  # No TLS gRPC port: with it, `consul connect envoy` prefers it and Envoy dies at start
  # with "DataSource cannot be empty" because no CA file is configured for it.
  grpc_tls = -1
  dns      = 8600
  server   = 8300
  serf_lan = 8301
  serf_wan = 8302
}

# Sidecars registered through the agent pick up proxy-defaults/service-defaults
# (protocol, upstream limits = circuit breaking, outlier detection) only with this on.
# It is the default since 1.9; stated because the mesh does not work without it.
enable_central_service_config = true

# Raft timing for a single local server: elect and commit fast (1 is the production
# value; the default 5 is meant for small cloud VMs and slows leader election).
performance {
  raft_multiplier = 1
}

# The UI at http://<addr>:8500/ui shows services, health, intentions and the topology.
ui_config {
  enabled = true
}

# A local mesh never phones home, and keeps its log readable.
disable_update_check = true
log_level            = "WARN"
log_json             = true

# On SIGINT/SIGTERM from supervisord: a single server has no one to leave to, so just stop.
leave_on_terminate = false
skip_leave_on_interrupt = true
