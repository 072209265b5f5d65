# How callers' sidecars pick an instance of notification.
Kind = "service-resolver"
Name = "notification"

# Every instance is on this machine: a loopback connect takes microseconds, so one
# that has not accepted in 1s is dead or wedged (Envoy's default is 5s) and the
# connect-failure retry moves on to the other instance quickly.
ConnectTimeout = "1s"

LoadBalancer {
  # Round robin, not least-request: with two instances a retry then always lands on the
  # *other* instance (least-request picks at random among equally idle hosts and can
  # retry the failing one). Outlier detection removes an instance that keeps failing.
  Policy = "round_robin"
}
