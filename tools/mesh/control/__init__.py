"""Control of a mesh run: `python -m tools.mesh up|down|status|logs` and what the tests
and benchmarks drive.

components.py  the list of a run's components; every program, instance env, edge
errors.py      MeshError and progress output
state.py       live state of each instance (Consul health, sidecar /ready, process)
up.py          up: start or complete the mesh, wait until every part is ready
down.py        down: stop gracefully, then make sure no process of the mesh survives
status.py      the status table, each component's block, circuits, hints
logs.py        follow one service's logs
"""

from tools.mesh.control.components import components, edges, programs, service_env
from tools.mesh.control.down import down, mesh_pids
from tools.mesh.control.errors import MeshError
from tools.mesh.control.logs import logs
from tools.mesh.control.state import InstanceState, check_states, instance_states
from tools.mesh.control.status import hints, render_circuits, render_status
from tools.mesh.control.up import up, wait_for_consul, wait_ready

__all__ = [
    "InstanceState",
    "MeshError",
    "check_states",
    "components",
    "down",
    "edges",
    "hints",
    "instance_states",
    "logs",
    "mesh_pids",
    "programs",
    "render_circuits",
    "render_status",
    "service_env",
    "up",
    "wait_for_consul",
    "wait_ready",
]
