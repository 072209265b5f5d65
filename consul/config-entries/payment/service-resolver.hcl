# How callers' sidecars pick an instance of payment.
Kind = "service-resolver"
Name = "payment"

# Every instance is on this machine: a loopback connect takes microseconds, so one
# that has not accepted in 1s is dead or wedged (Envoy's default is 5s) and the
# connect-failure retry moves on to the other instance quickly.
ConnectTimeout = "1s"

# One subset per instance. A subset filters the instances' *sidecars* (what callers
# dial), so it names the instance a sidecar fronts: Proxy.DestinationServiceID, the
# instance id (the instance's own meta is not on its sidecar). The operator reaches one
# instance at a time through the virtual services payment-1 and payment-2
# (consul/config-entries/payment-<n>/ redirect there), for payment's fault knob, which
# is per instance. No DefaultSubset: callers that name none (everyone else) get every
# instance.
Subsets = {
  "payment-1" = {
    Filter = "Service.Proxy.DestinationServiceID == \"payment-1\""
  }
  "payment-2" = {
    Filter = "Service.Proxy.DestinationServiceID == \"payment-2\""
  }
}

LoadBalancer {
  # Round robin, not least-request: with two instances a retry then always lands on the
  # *other* instance (least-request picks at random among equally idle hosts and can
  # retry the failing one). Outlier detection removes an instance that keeps failing.
  Policy = "round_robin"
}
