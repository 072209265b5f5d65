# Default deny: a service may call another only where consul/config-entries/<callee>/
# service-intentions.hcl allows it (exactly the call graph of topology.toml).
# With ACLs off Consul's default intention behaviour is *allow*, so the deny must be
# written down; more specific intentions (a named source) take precedence over it.
Kind = "service-intentions"
Name = "*"

Sources = [
  {
    Name        = "*"
    Action      = "deny"
    Description = "meshmart: nothing is allowed unless the call graph says so"
  },
]
