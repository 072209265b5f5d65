# Who may call user: exactly its callers in topology.toml, and only
# meshmart.user.v1.UserService
# (not reflection, not health: operators reach those on the service's own port).
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "user"

Sources = [
  {
    Name        = "order"
    Description = "order -> user is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.user.v1.UserService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "storefront"
    Description = "storefront -> user is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.user.v1.UserService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
