# inventory: protocol.
Kind     = "service-defaults"
Name     = "inventory"
# gRPC over HTTP/2 (also the proxy-defaults value; stated per service because a
# service-router for inventory is only accepted once its protocol is known to be L7).
Protocol = "grpc"
