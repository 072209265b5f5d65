# Who may call payment: exactly its callers in topology.toml, and only
# meshmart.payment.v1.PaymentService
# (reflection and health: only the operator, the last source below).
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "payment"

Sources = [
  {
    Name        = "order"
    Description = "order: Charge and Refund only"
    Permissions = [
      # order's saga charges and, when compensating, refunds: the only caller that
      # may move money
      { Action = "allow", HTTP { PathExact = "/meshmart.payment.v1.PaymentService/Charge" } },
      { Action = "allow", HTTP { PathExact = "/meshmart.payment.v1.PaymentService/Refund" } },
      # Everything else from order (other methods, reflection, PaymentAdminService...).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "storefront"
    Description = "storefront: ListPayments only"
    Permissions = [
      # the dashboard shows a user's payments; storefront must never charge or refund
      { Action = "allow", HTTP { PathExact = "/meshmart.payment.v1.PaymentService/ListPayments" } },
      # Everything else from storefront (other methods, reflection,
      # PaymentAdminService...).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "edge"
    Description = "edge: the public RPCs of payment only (tools/mesh/edge/api.py)"
    Permissions = [
      # The edge gateway forwards REST and gRPC calls of its clients; internal RPCs
      # stay unreachable from it even if a route were added by mistake.
      { Action = "allow", HTTP { PathExact = "/meshmart.payment.v1.PaymentService/ListPayments" } },
      # Everything else (internal RPCs, reflection, health).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "operator"
    Description = "operator: reflection, health, the reads of payment and its admin service (tools/mesh/operator.py)"
    Permissions = [
      # grpcurl list / describe (v1 first, then v1alpha: allow both) and grpc.health.v1.
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1alpha.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.health.v1.Health/" } },
      # The reads: the RPCs whose REST face is a GET (no side effects).
      { Action = "allow", HTTP { PathExact = "/meshmart.payment.v1.PaymentService/ListPayments" } },
      # The admin service (fault injection): the operator, and no other identity.
      { Action = "allow", HTTP { PathPrefix = "/meshmart.payment.v1.PaymentAdminService/" } },
      # Everything else (writes, internal RPCs).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
