# Who may call inventory: exactly its callers in topology.toml, and only
# meshmart.inventory.v1.InventoryService
# (not reflection, not health: operators reach those on the service's own port).
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "inventory"

Sources = [
  {
    Name        = "order"
    Description = "order -> inventory is in the call graph"
    Permissions = [
      { Action = "allow", HTTP { PathPrefix = "/meshmart.inventory.v1.InventoryService/" } },
      # Everything else (reflection, health, anything added later) is denied.
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "edge"
    Description = "edge: the public RPCs of inventory only (tools/mesh/edge/api.py)"
    Permissions = [
      # The edge gateway forwards REST and gRPC calls of its clients; internal RPCs
      # stay unreachable from it even if a route were added by mistake.
      { Action = "allow", HTTP { PathExact = "/meshmart.inventory.v1.InventoryService/GetStock" } },
      # Everything else (internal RPCs, reflection, health).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
