"""The meshmart mesh, derived from topology.toml: `python -m tools.mesh up|down|status|logs`.

__main__.py      the command line (`make up`, `make down`, `make status`, `make logs`)
topology.py      topology.toml -> services, instances and every derived port (pure)
plan.py          one run (address, run dir) -> instances, paths, commands, env (data)
component.py     the interface of a mesh component (NATS, observability, the edge, ...)
connect.py       what the components that are a Connect service share (programs, health)
control/         up / down / status / logs, and the list of a run's components
nats.py          component: NATS JetStream, its registration, its clients' upstream
observability.py component: Prometheus and Zipkin, and the hooks they need
edge/            component: the edge gateway (REST/JSON and gRPC for the public API)
canary.py        the split between a service's two releases (`make canary`, status)
entries.py       consul/config-entries/ applied with `consul config write`, checked
                 against the call graph
supervisor.py    the supervisord config of a run and its XML-RPC client
sidecar.py       wait for an instance's registration, then exec `consul connect envoy`
envoy.py         a sidecar's admin API: /ready, /stats, /clusters
health.py        Consul's view of health: worst status of a service, poll until ready
http.py          JSON/text HTTP client for Consul and Envoy (loopback, no proxy)
cli.py           the options that select a run (--address, --run-dir), exec hand-over
table.py         plain-text tables of `make status`
files.py         generated files, written whole and only when changed
version.py       the commit a run registers as meta.version
"""
