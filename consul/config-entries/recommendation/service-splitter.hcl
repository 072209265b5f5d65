# The canary: how much of recommendation's traffic each release gets (subsets in
# service-resolver.hcl). Applied in the CALLER's Envoy as weighted clusters on the route,
# per request. These weights are what `make up` writes; `make canary PCT=<n>` rewrites the
# entry live in Consul (n% to v2) without touching this file or restarting anything, and
# the next `make up` puts these back.
Kind = "service-splitter"
Name = "recommendation"

Splits = [
  {
    Weight        = 90
    ServiceSubset = "v1"
  },
  {
    Weight        = 10
    ServiceSubset = "v2"
  },
]
