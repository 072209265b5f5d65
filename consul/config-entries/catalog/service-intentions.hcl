# Who may call catalog: exactly its callers in topology.toml, and only
# meshmart.catalog.v1.CatalogService
# (not reflection, not health: operators reach those on the service's own port).
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "catalog"

Sources = [
  {
    Name        = "cart"
    Description = "cart -> catalog is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.catalog.v1.CatalogService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "recommendation"
    Description = "recommendation -> catalog is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.catalog.v1.CatalogService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "storefront"
    Description = "storefront -> catalog is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.catalog.v1.CatalogService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
