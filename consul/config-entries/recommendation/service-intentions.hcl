# Who may call recommendation: exactly its callers in topology.toml, and only
# meshmart.recommendation.v1.RecommendationService
# (not reflection, not health: operators reach those on the service's own port).
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "recommendation"

Sources = [
  {
    Name        = "storefront"
    Description = "storefront -> recommendation is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.recommendation.v1.RecommendationService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
