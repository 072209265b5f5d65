# How callers' sidecars pick an instance of recommendation, and which release it runs.
Kind = "service-resolver"
Name = "recommendation"

# Every instance is on this machine: a loopback connect takes microseconds, so one
# that has not accepted in 1s is dead or wedged (Envoy's default is 5s) and the
# connect-failure retry moves on to the other instance quickly.
ConnectTimeout = "1s"

# Two releases of the same contract run under this one name (topology.toml: the Python v1
# instances, and the Go v2 canary, services/recommendation-go). Each instance registers its
# release as meta.version; service-splitter.hcl divides the traffic between the subsets
# (`make canary PCT=<n>` changes the weights live), service-router.hcl lets a request pick
# one with the x-meshmart-version header.
Subsets = {
  "v2" = {
    Filter      = "Service.Meta.version == v2"
    # Only instances whose checks pass (a stopping or dead v2 leaves at once).
    OnlyPassing = true
  }
  # The stable release: every instance that is not the canary. Not `== v1`, so that
  # instances labelled otherwise (docker compose registers the project's version) still
  # form it, and the split never points at an empty subset there.
  "v1" = {
    Filter      = "Service.Meta.version != v2"
    OnlyPassing = true
  }
}
# Callers that name no subset (nothing here does: the splitter and the router name one)
# get the stable release.
DefaultSubset = "v1"

# v2 down (killed, stopping, not deployed): its share of the traffic goes to v1 instead of
# failing. Envoy gets an aggregate cluster with v1 as the lower priority.
Failover = {
  "v2" = {
    ServiceSubset = "v1"
  }
}

LoadBalancer {
  # Round robin, not least-request: with two instances a retry then always lands on the
  # *other* instance (least-request picks at random among equally idle hosts and can
  # retry the failing one). Outlier detection removes an instance that keeps failing.
  Policy = "round_robin"
}
