"""meshmart in containers, derived from topology.toml: `python -m tools.compose` (make compose).

model.py         topology.toml + pinned versions -> the docker-compose.yml document
requirements.py  docker/requirements.txt: the runtime subset of requirements.txt, from imports
yamlout.py       the YAML writer (block style, every string quoted)
edge.py          the edge container's entry: render, register in Consul, exec Envoy
__main__.py      write / check (stale -> "run make compose")
"""
