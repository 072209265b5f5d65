# Default deny: a service may call another only where consul/config-entries/<callee>/
# service-intentions.hcl allows it (exactly the call graph of topology.toml).
# With ACLs off Consul's default intention behaviour is *allow*, so the deny must be
# written down; more specific intentions (a named source) take precedence over it.
# `make up` runs with ACLs (default_policy "deny"), where the default is deny already
# and this entry changes nothing; it stays for the meshes without ACLs: `make up
# ACL=0` and docker-compose.yml (docs/mesh.md, Consul ACLs).
Kind = "service-intentions"
Name = "*"

Sources = [
  {
    Name        = "*"
    Action      = "deny"
    Description = "meshmart: nothing is allowed unless the call graph says so"
  },
]
