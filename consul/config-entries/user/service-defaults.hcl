# user: protocol.
Kind     = "service-defaults"
Name     = "user"
# gRPC over HTTP/2 (also the proxy-defaults value; stated per service because a
# service-router for user is only accepted once its protocol is known to be L7).
Protocol = "grpc"
