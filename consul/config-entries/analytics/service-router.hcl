# How callers' sidecars route to analytics: retries and the overall timeout.
# (Applies in the CALLER's Envoy, on its route to the analytics upstream.)
Kind = "service-router"
Name = "analytics"

Routes = [
  {
    Match {
      HTTP {
        # Every gRPC method of analytics: a gRPC call is a POST to
        # /<package>.<Service>/<Method>.
        PathPrefix = "/"
      }
    }
    Destination {
      # GetSalesReport and GetPopularProducts are reads: anything that did not answer
      # may be retried, including a connection reset mid-call.
      RetryOn = ["unavailable", "connect-failure", "refused-stream", "reset"]
      # 3 retries, round-robin (service-resolver): one bad instance is absorbed.
      NumRetries = 3
      # A report of at most 366 days from the read model: 2s covers retries on a loaded box.
      RequestTimeout = "2s"
    }
  },
]
