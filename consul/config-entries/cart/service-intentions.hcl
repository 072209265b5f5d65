# Who may call cart: exactly its callers in topology.toml, and only
# meshmart.cart.v1.CartService
# (reflection and health: only the operator, the last source below).
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
  {
    Name        = "edge"
    Description = "edge: the public RPCs of cart only (tools/mesh/edge/api.py)"
    Permissions = [
      # The edge gateway forwards REST and gRPC calls of its clients; internal RPCs
      # stay unreachable from it even if a route were added by mistake.
      { Action = "allow", HTTP { PathExact = "/meshmart.cart.v1.CartService/AddItem" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.cart.v1.CartService/Clear" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.cart.v1.CartService/GetCart" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.cart.v1.CartService/RemoveItem" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.cart.v1.CartService/UpdateQuantity" } },
      # Everything else (internal RPCs, reflection, health).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "operator"
    Description = "operator: reflection, health, the reads of cart (tools/mesh/operator.py)"
    Permissions = [
      # grpcurl list / describe (v1 first, then v1alpha: allow both) and grpc.health.v1.
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1alpha.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.health.v1.Health/" } },
      # The reads: the RPCs whose REST face is a GET (no side effects).
      { Action = "allow", HTTP { PathExact = "/meshmart.cart.v1.CartService/GetCart" } },
      # Everything else (writes, internal RPCs).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
