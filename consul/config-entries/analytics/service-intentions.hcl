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
]
