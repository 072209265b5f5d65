# Who may call notification: only the edge gateway (no service calls it; its input is
# events from NATS), and only its public RPC.
# Each permission list ends with an explicit deny: with ACLs off, a request that
# matches no permission would otherwise fall through to the default *allow*.
Kind = "service-intentions"
Name = "notification"

Sources = [
  {
    Name        = "edge"
    Description = "edge: the public RPCs of notification only (tools/mesh/edge/api.py)"
    Permissions = [
      {
        Action = "allow"
        HTTP { PathExact = "/meshmart.notification.v1.NotificationService/ListNotifications" }
      },
      # Everything else (reflection, health, anything added later).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
  {
    Name        = "operator"
    Description = "operator: reflection, health, the reads of notification (tools/mesh/operator.py)"
    Permissions = [
      # grpcurl list / describe (v1 first, then v1alpha: allow both) and grpc.health.v1.
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.reflection.v1alpha.ServerReflection/" } },
      { Action = "allow", HTTP { PathPrefix = "/grpc.health.v1.Health/" } },
      # The reads: the RPCs whose REST face is a GET (no side effects).
      { Action = "allow", HTTP { PathExact = "/meshmart.notification.v1.NotificationService/ListNotifications" } },
      # Everything else (writes, internal RPCs).
      { Action = "deny", HTTP { PathPrefix = "/" } },
    ]
  },
]
