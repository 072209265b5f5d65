# How callers' sidecars route to storefront: retries and the overall timeout.
# (Applies in the CALLER's Envoy, on its route to the storefront upstream.)
Kind = "service-router"
Name = "storefront"

Routes = [
  {
    Match {
      HTTP {
        # Every gRPC method of storefront: a gRPC call is a POST to
        # /<package>.<Service>/<Method>.
        PathPrefix = "/"
      }
    }
    Destination {
      # Retry what never ran or was refused: UNAVAILABLE is what a meshmart service
      # answers when it did nothing (shutting down, injected fault, dependency down),
      # connect-failure and refused-stream mean the request never reached the process.
      # Not retried: DEADLINE_EXCEEDED/CANCELLED (the caller has given up),
      # RESOURCE_EXHAUSTED (retrying an overloaded service makes it worse).
      # reset (the connection broke mid-call, the call may have run): GetDashboard
      # is a read.
      RetryOn = ["unavailable", "connect-failure", "refused-stream", "reset"]
      # 3 retries, >= the callers' outlier MaxFailures (3): a call cannot use up its
      # tries on a dead instance, which is ejected after 3 consecutive failures; with
      # round-robin a retry usually lands on the other instance anyway. Retries in
      # flight per upstream cluster: 32 (Envoy's default of 3 is raised by the sidecar
      # shim, tools/mesh/sidecar.py; Consul 1.14 has no field for it), spaced by Envoy's
      # default 25 ms jittered exponential backoff (no field either); with the callers'
      # MaxConcurrentRequests they keep retry storms bounded.
      NumRetries = 3
      # Overall time for the call including every retry: GetDashboard fans out in
      # parallel with per-call deadlines and returns partial results itself; 5s is
      # above those deadlines.
      # (Consul 1.14's service-router has no per-try timeout field; each try is bounded
      # by this overall timeout and by the caller's own gRPC deadline.)
      RequestTimeout = "5s"
    }
  },
]
