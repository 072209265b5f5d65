# nats: the event bus (NATS JetStream, tools/mesh/nats.py) is plain TCP, not gRPC:
# its sidecar's public listener and every client's local listener for it become TCP
# proxies (still mTLS between the sidecars). It overrides proxy-defaults' "grpc"; no
# service-router or L7 intention can apply to it.
Kind     = "service-defaults"
Name     = "nats"
Protocol = "tcp"
