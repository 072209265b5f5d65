"""meshmart in containers, derived from topology.toml: `python -m tools.compose` (make compose).

model.py         topology.toml + pinned versions + the mesh's code -> docker-compose.yml,
                 docker/compose.local.yml (local images) and prometheus/compose.yml
requirements.py  docker/requirements.txt: pyproject.toml's runtime set, pinned by requirements.txt
plan.py          ContainerPlan: the mesh's MeshPlan for one pod (Consul in another container)
edge.py          the edge container's entry: render, register in Consul, exec Envoy
nats.py          the one-shot that registers the NATS pod in Consul
images.py        every image built locally with podman (debootstrap base, official roles)
engine.py        podman's Docker API for the compose binary, and its healthchecks' ticker
run.py           make compose-up / compose-down / compose-ps
__main__.py      write / check (stale -> "run make compose")

The YAML writer is tools/yamlout.py (shared with tools/k8s and the edge's Envoy config).
"""
