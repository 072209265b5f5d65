# Who may reach the event bus: exactly the clients of topology.toml [nats] (each
# publisher and consumer). L4 (protocol tcp): the whole connection is allowed or not;
# the default-deny in _global/ refuses everyone else.
Kind = "service-intentions"
Name = "nats"

Sources = [
  {
    Name        = "user"
    Action      = "allow"
    Description = "user publishes UserUpdated (outbox relay)"
  },
  {
    Name        = "order"
    Action      = "allow"
    Description = "order publishes OrderPlaced/Confirmed/Cancelled, consumes UserUpdated"
  },
  {
    Name        = "payment"
    Action      = "allow"
    Description = "payment publishes PaymentCaptured/Refunded (outbox relay)"
  },
  {
    Name        = "inventory"
    Action      = "allow"
    Description = "inventory consumes OrderCancelled"
  },
  {
    Name        = "notification"
    Action      = "allow"
    Description = "notification consumes OrderConfirmed/Cancelled, PaymentRefunded, UserUpdated"
  },
  {
    Name        = "analytics"
    Action      = "allow"
    Description = "analytics consumes OrderConfirmed, PaymentRefunded (read models)"
  },
]
