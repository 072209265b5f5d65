# Who may call storefront: only the edge gateway (no service calls it), and only its
# public RPCs. Each permission list ends with an explicit deny: with ACLs off, a
# request that matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "storefront"

Sources = [
  {
    Name        = "edge"
    Description = "edge: the public RPCs of storefront only (tools/mesh/edge/api.py)"
    Permissions = [
      # The edge gateway forwards REST and gRPC calls of its clients; internal RPCs
      # stay unreachable from it even if a route were added by mistake.
      { Action = "allow", HTTP { PathExact = "/meshmart.storefront.v1.StorefrontService/GetDashboard" } },
      # Everything else (internal RPCs, reflection, health).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
