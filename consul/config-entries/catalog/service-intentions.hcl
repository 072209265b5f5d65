# Who may call catalog: exactly its callers in topology.toml, and only
# meshmart.catalog.v1.CatalogService
# (reflection and health: only the operator, the last source below).
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
  {
    Name        = "edge"
    Description = "edge: the public RPCs of catalog only (tools/mesh/edge/api.py)"
    Permissions = [
      # The edge gateway forwards REST and gRPC calls of its clients; internal RPCs
      # stay unreachable from it even if a route were added by mistake.
      { Action = "allow", HTTP { PathExact = "/meshmart.catalog.v1.CatalogService/GetProduct" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.catalog.v1.CatalogService/ListProducts" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.catalog.v1.CatalogService/SearchProducts" } },
      # Everything else (internal RPCs, reflection, health).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "operator"
    Description = "operator: reflection, health, the reads of catalog (tools/mesh/operator.py)"
    Permissions = [
      # grpcurl list / describe (v1 first, then v1alpha: allow both) and grpc.health.v1.
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1alpha.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.health.v1.Health/" } },
      # The reads: the RPCs whose REST face is a GET (no side effects).
      { Action = "allow", HTTP { PathExact = "/meshmart.catalog.v1.CatalogService/ListProducts" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.catalog.v1.CatalogService/GetProduct" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.catalog.v1.CatalogService/SearchProducts" } },
      # Everything else (writes, internal RPCs).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
