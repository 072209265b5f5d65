# notification: protocol. It calls no service (events come from NATS, see
# consul/config-entries/nats/), so its sidecar has no upstream limits to set.
Kind     = "service-defaults"
Name     = "notification"
# gRPC over HTTP/2 (also the proxy-defaults value; stated per service because a
# service-router for notification is only accepted once its protocol is known to be L7).
Protocol = "grpc"
