# edge: protocol, and the limits its sidecar applies to what the edge gateway calls
# (every service with public RPCs; tools/mesh/edge).
Kind     = "service-defaults"
Name     = "edge"
# The edge sidecar's upstream listeners speak gRPC (the edge Envoy transcodes REST first).
Protocol = "grpc"

# Circuit breaking and outlier detection live on the caller: Envoy applies them to the
# edge sidecar's upstream clusters. The edge carries every client's traffic, so its
# limits are wider than a single service's.
UpstreamConfig {
  Defaults {
    Limits {
      # gRPC multiplexes calls over HTTP/2: a few connections per worker and instance.
      MaxConnections = 64
      MaxPendingRequests = 64
      # In-flight calls per upstream service. Above it the edge fails fast (503 with a
      # JSON body) instead of queueing clients in front of an overloaded service.
      MaxConcurrentRequests = 256
    }
    PassiveHealthCheck {
      # As for the services: sweep every second, eject after 3 consecutive 5xx
      # (UNAVAILABLE, INTERNAL, connect failures), never more than half of the instances.
      Interval = "1s"
      MaxFailures = 3
      EnforcingConsecutive5xx = 100
      MaxEjectionPercent = 50
      BaseEjectionTime = "10s"
    }
  }
}
