# recommendation: protocol, and the limits its sidecar applies to what it calls.
Kind     = "service-defaults"
Name     = "recommendation"
# gRPC over HTTP/2 (also the proxy-defaults value; stated per service because a
# service-router for recommendation is only accepted once its protocol is known to be L7).
Protocol = "grpc"

# What recommendation's OWN sidecar does towards the services recommendation calls
# (order, catalog, user).
# Circuit breaking and outlier detection live on the caller: Envoy applies them to the
# caller's upstream cluster, so the same block on the callee would change nothing.
UpstreamConfig {
  Defaults {
    Limits {
      # gRPC multiplexes every call on HTTP/2: Envoy needs about one connection per
      # worker per instance, so 32 is plenty and bounds sockets on a shared box.
      MaxConnections = 32
      # Calls waiting for a connection to be set up (with HTTP/2 only while connecting).
      MaxPendingRequests = 32
      # In-flight calls to the whole upstream service, retries included. In flight =
      # calls/s x latency: the chaos tests' 200 calls/s on a loaded two-core box reach
      # 0.3-0.4 s p99 while an instance is replaced (70-80 in flight), and a limit of 64
      # shed calls there (UNAVAILABLE "overflow"; Envoy does not retry its own
      # overflow). 256 holds that with room; above it calls still fail fast instead of
      # queueing in front of an overloaded service until their deadlines.
      MaxConcurrentRequests = 256
    }
    PassiveHealthCheck {
      # Outlier detection. Sweep every second, so a failing instance leaves within ~1s.
      Interval = "1s"
      # Eject after 3 consecutive failures: gRPC UNAVAILABLE/INTERNAL/UNKNOWN count as
      # 5xx, and so do connect failures and resets. Business errors (NOT_FOUND,
      # INVALID_ARGUMENT, FAILED_PRECONDITION...) do not. Kept <= the routers' NumRetries
      # (3): a call then cannot spend all its tries on a dead instance, because that
      # instance is ejected by the failures before the call's last try.
      MaxFailures = 3
      # Always act on it (100%); lower values only ramp ejection in gradually.
      EnforcingConsecutive5xx = 100
      # At most half of an upstream's instances may be out: of two, never both.
      MaxEjectionPercent = 50
      # Out for 10s, then back on probation; each further ejection of the same
      # instance lasts 10s x the number of ejections, so a flapping one stays out longer.
      BaseEjectionTime = "10s"
    }
  }
}
