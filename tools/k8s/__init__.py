"""meshmart on Kubernetes with consul-k8s, derived from topology.toml and
consul/config-entries/: `python -m tools.k8s` (make k8s) writes deploy/k8s/.

model.py     topology.toml -> the Kubernetes-native objects (the compose model's sources)
crds.py      consul/config-entries/*.hcl <-> consul-k8s custom resources, both ways
__main__.py  write / check (stale -> "run make k8s")

docs/kubernetes.md: how to install and use it, and what the tests prove.
"""
