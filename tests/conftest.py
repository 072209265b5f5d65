"""The whole mesh, started once per test session and always torn down.

Shared by every suite that needs the real system (tests/mesh, tests/edge): one
session-scoped fixture here, so a session that runs several of them starts one mesh.
(Moved here unchanged from tests/mesh/conftest.py.)

It is the code path of `make up` (tools.mesh.control.up) with its own run directory
under pytest's tmp dir and its own loopback address (127.0.0.2, or the next free one),
so it runs next to a developer's `make up` mesh on 127.0.0.1 with the very same ports.
Teardown runs `down` and then checks by pid that no process of the mesh is left.

The plan adds one test-only caller identity: cart's sidecar gets a local listener to
payment. cart -> payment is not in the call graph (no intention allows it), which is
exactly what the intention tests need to call "as cart".
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.host import free_mesh_address
from harness.mesh import running

# The session's PostgreSQL and the engine fixtures (harness/postgres.py), for every suite.
from harness.postgres import databases, engine, postgres_cluster  # noqa: F401
from services.kit import loop_watch
from tools.mesh.plan import MeshPlan
from tools.mesh.pods import pods_unavailable
from tools.mesh.topology import load_topology

TEST_ONLY_UPSTREAMS = {"cart": ["payment"]}
# Every instance of the session mesh in its own network namespace (tools/mesh/pods.py)
# where the session may make them (root), as `make up` does; MESHMART_TEST_PODS=0: one
# shared loopback.
PODS = os.environ.get("MESHMART_TEST_PODS", "1") == "1" and not pods_unavailable()


def pytest_report_header() -> str:
    if PODS or os.environ.get("MESHMART_TEST_PODS") == "0":
        return f"mesh: {'pods' if PODS else 'one shared loopback (MESHMART_TEST_PODS=0)'}"
    return f"mesh: NOT isolated: {pods_unavailable()}, so every instance shares the loopback"


def _free_loopback_address() -> str:
    """127.0.0.2, or the next 127.0.0.x where no port of a mesh is taken (a mesh being torn
    down frees Consul's ports before Prometheus and Zipkin have stopped)."""
    wanted = os.environ.get("MESHMART_TEST_MESH_ADDRESS")
    if wanted:
        return wanted
    return free_mesh_address(load_topology())


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshPlan]:
    run_dir = tmp_path_factory.mktemp("mesh")
    plan = MeshPlan(
        topology=load_topology(),
        address=_free_loopback_address(),
        run_dir=run_dir,
        extra_upstreams=TEST_ONLY_UPSTREAMS,
        # INFO: the access log lines (one per RPC, with trace_id/span_id) are what
        # tests/observability joins with the traces; health checks stay at debug.
        # A loop callback that blocks over 20 ms is logged (services/kit/loop_watch.py),
        # for tests/mesh/test_event_loop.py.
        # recommendation's catalog lookup gets 1 s instead of its 300 ms: the tests on this
        # mesh are about routing, retries and failover, and a two-core box that also runs
        # the whole mesh (and the load) starves a lookup past 300 ms now and then, failing
        # a Recommend whatever the mesh did. The 300 ms budget is recommendation's own
        # contract (tests/contract, tests/unit/recommendation).
        extra_env={
            "MESHMART_LOG_LEVEL": "INFO",
            loop_watch.SETTING: "20",
            "MESHMART_RECOMMENDATION_CATALOG_TIMEOUT_MS": "1000",
        },
        pods=PODS,
    )
    with running(plan):
        yield plan


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In-process tests first, then the tests on the session mesh, and last the one that
    stops it (marked `stops_mesh`): the mesh then runs only while it is used, and no
    mesh test finds it already stopped, whatever the folders' alphabetical order."""

    def phase(item: pytest.Item) -> int:
        if item.get_closest_marker("stops_mesh"):
            return 2
        return 1 if "mesh" in getattr(item, "fixturenames", ()) else 0

    items.sort(key=phase)  # stable: keeps the usual order within each phase
