"""The meshmart mesh, derived from topology.toml: `python -m tools.mesh up|down|status|logs`.

topology.py  topology.toml -> instances and every derived port (pure)
plan.py      one run (address, run dir) -> every program with its command and env (pure)
supervisor.py  supervisord config and its XML-RPC client
entries.py   consul/config-entries/ applied with `consul config write`, checked vs topology
envoy.py     sidecar admin API: /ready, /stats, /clusters
control.py   up / down / status / logs
sidecar.py   wait for an instance's registration, then exec `consul connect envoy`
"""
