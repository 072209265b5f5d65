# Who may call cart: exactly its callers in topology.toml, and only
# meshmart.cart.v1.CartService
# (not reflection, not health: operators reach those on the service's own port).
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "cart"

Sources = [
  {
    Name        = "order"
    Description = "order -> cart is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.cart.v1.CartService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
