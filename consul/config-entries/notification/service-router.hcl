# How callers' sidecars route to notification: retries and the overall timeout.
# (Applies in the CALLER's Envoy, on its route to the notification upstream.)
Kind = "service-router"
Name = "notification"

Routes = [
  {
    Match {
      HTTP {
        # Every gRPC method of notification: a gRPC call is a POST to
        # /<package>.<Service>/<Method>.
        PathPrefix = "/"
      }
    }
    Destination {
      # ListNotifications is a read: anything that did not answer may be retried,
      # including a connection reset mid-call.
      RetryOn = ["unavailable", "connect-failure", "refused-stream", "reset"]
      # 3 retries, round-robin (service-resolver): one bad instance is absorbed.
      NumRetries = 3
      # A page read from SQLite: 2s covers retries on a loaded box.
      RequestTimeout = "2s"
    }
  },
]
