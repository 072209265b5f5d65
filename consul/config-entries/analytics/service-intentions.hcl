# Who may call analytics: only the edge gateway (no service calls it yet; its input is
# events from NATS), and only its public RPCs.
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "analytics"

Sources = [
  {
    Name        = "edge"
    Description = "edge: the public RPCs of analytics only (tools/mesh/edge/api.py)"
    Permissions = [
      {
        Action = "allow"
        HTTP { PathExact = "/meshmart.analytics.v1.AnalyticsService/GetPopularProducts" }
      },
      {
        Action = "allow"
        HTTP { PathExact = "/meshmart.analytics.v1.AnalyticsService/GetSalesReport" }
      },
      # Everything else (reflection, health, anything added later).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "operator"
    Description = "operator: reflection, health, the reads of analytics (tools/mesh/operator.py)"
    Permissions = [
      # grpcurl list / describe (v1 first, then v1alpha: allow both) and grpc.health.v1.
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1alpha.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.health.v1.Health/" } },
      # The reads: the RPCs whose REST face is a GET (no side effects).
      { Action = "allow", HTTP { PathExact = "/meshmart.analytics.v1.AnalyticsService/GetSalesReport" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.analytics.v1.AnalyticsService/GetPopularProducts" } },
      # Everything else (writes, internal RPCs).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
