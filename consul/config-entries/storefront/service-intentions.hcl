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
  {
    Name        = "operator"
    Description = "operator: reflection, health, the reads of storefront (tools/mesh/operator.py)"
    Permissions = [
      # grpcurl list / describe (v1 first, then v1alpha: allow both) and grpc.health.v1.
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1alpha.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.health.v1.Health/" } },
      # The reads: the RPCs whose REST face is a GET (no side effects).
      { Action = "allow", HTTP { PathExact = "/meshmart.storefront.v1.StorefrontService/GetDashboard" } },
      # Everything else (writes, internal RPCs).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
