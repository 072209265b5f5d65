# How callers' sidecars route to recommendation: retries and the overall timeout.
# (Applies in the CALLER's Envoy, on its route to the recommendation upstream.)
Kind = "service-router"
Name = "recommendation"

# Routes are tried in order. The first two let a caller pick a release with the request
# header x-meshmart-version (v1/v2 are the subsets of service-resolver.hcl), e.g. to try
# the canary before it gets traffic:
#   grpcurl ... -H 'x-meshmart-version: v2' <caller's recommendation listener> ...
# Every answer says which release gave it in the same response header. Anything else goes
# through the canary split (service-splitter.hcl).
Routes = [
  {
    Match {
      HTTP {
        PathPrefix = "/"
        Header = [{ Name = "x-meshmart-version", Exact = "v2" }]
      }
    }
    Destination {
      ServiceSubset = "v2"
      # The same retry policy and timeout as the split route below.
      RetryOn = ["unavailable", "connect-failure", "refused-stream", "reset"]
      NumRetries = 3
      RequestTimeout = "5s"
    }
  },
  {
    Match {
      HTTP {
        PathPrefix = "/"
        Header = [{ Name = "x-meshmart-version", Exact = "v1" }]
      }
    }
    Destination {
      ServiceSubset = "v1"
      RetryOn = ["unavailable", "connect-failure", "refused-stream", "reset"]
      NumRetries = 3
      RequestTimeout = "5s"
    }
  },
  {
    Match {
      HTTP {
        # Every gRPC method of recommendation: a gRPC call is a POST to
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
      # reset (the connection broke mid-call, the call may have run): Recommend is
      # a read.
      RetryOn = ["unavailable", "connect-failure", "refused-stream", "reset"]
      # 3 retries, >= the callers' outlier MaxFailures (3): a call cannot use up its
      # tries on a dead instance, which is ejected after 3 consecutive failures; with
      # round-robin a retry usually lands on the other instance anyway. Retries in
      # flight per upstream cluster: 32 (Envoy's default of 3 is raised by the sidecar
      # shim, tools/mesh/sidecar.py; Consul 1.14 has no field for it), spaced by Envoy's
      # default 25 ms jittered exponential backoff (no field either); with the callers'
      # MaxConcurrentRequests they keep retry storms bounded.
      NumRetries = 3
      # Overall time for the call including every retry: Recommend reads order
      # history and catalog (each a few ms); 5s bounds a stuck instance above the
      # dashboard's own deadline.
      # (Consul 1.14's service-router has no per-try timeout field; each try is bounded
      # by this overall timeout and by the caller's own gRPC deadline.)
      RequestTimeout = "5s"
    }
  },
]
