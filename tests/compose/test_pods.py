"""docker-compose.yml's wiring, run: its containers as pods in network namespaces.

No Docker engine here, so tools/compose/pods.py runs each container's command with its
environment, address and mounts as the compose binary reads them, the images replaced
by the same programs from `make setup` (see its docstring). This checks what a typo in
the file or a wrong rule in tools/compose/model.py would break and `docker compose
config` cannot see: the start order the healthchecks give, each sidecar in its
instance's pod, service -> service and edge -> service calls over mTLS across pods,
NATS reached through the mesh, and Consul seeing every check pass. The Go canary is
not started (its healthcheck needs grpc-health-probe, which only its image has).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.compose.helpers import COMPOSE_BIN
from tools.compose.pods import PodRun, compose_config, pods

# The sidecars pull in their instances; those pull in Consul, the config entries, NATS.
WANTED = [
    "catalog-1-sidecar", "catalog-2-sidecar", "cart-1-sidecar",
    "user-1-sidecar", "nats-1-sidecar", "edge-1-sidecar",
]

LIST_PRODUCTS = (
    "import os, grpc; from meshmart.catalog.v1 import catalog_pb2 as c, catalog_pb2_grpc as g; "
    "ch = grpc.insecure_channel(os.environ['MESHMART_UPSTREAM_CATALOG']); "
    "r = g.CatalogServiceStub(ch).ListProducts(c.ListProductsRequest(page_size=3), timeout=10); "
    "print(len(r.products))"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PodRun, dict[str, float]]]:
    assert os.geteuid() == 0 and shutil.which("ip"), (
        "the pod runner needs root and iproute2 (network namespaces)")
    tmp = tmp_path_factory.mktemp("pods")
    config = compose_config(COMPOSE_BIN, tmp / "docker-config")
    with pods(config, tmp / "run", WANTED, timeout=150.0) as started:
        prefix = started[0].prefix
        yield started
    # Torn down: every process stopped (down() waits), no namespace of the run is left.
    assert all(p.poll() is not None for p in started[0].processes.values())
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in left.splitlines() if line.startswith(f"{prefix}-")]


def _curl(run: PodRun, pod: str, url: str) -> tuple[int, str]:
    result = run.run_in(pod, ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", url])
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body


def test_every_container_starts_in_the_order_its_healthchecks_give(
    run: tuple[PodRun, dict[str, float]],
) -> None:
    pod_run, ready = run
    order = list(ready)
    assert set(WANTED) <= set(order)
    pulled_in = {"consul", "consul-config", "nats-1", "nats-1-register", "user-1", "edge-1"}
    assert pulled_in <= set(order)
    for name in order:  # every dependency was ready before the container started
        for dependency in pod_run.services[name].get("depends_on") or {}:
            assert order.index(dependency) < order.index(name), (name, dependency)
    assert all(p.poll() is None for n, p in pod_run.processes.items()
               if pod_run.services[n]["restart"] != "no")


def test_a_service_reaches_another_pod_through_both_sidecars(
    run: tuple[PodRun, dict[str, float]],
) -> None:
    pod_run, _ = run
    result = pod_run.run_in("cart-1", ["python", "-c", LIST_PRODUCTS])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_a_pod_keeps_its_sidecar_admin_and_upstream_listeners_to_itself(
    run: tuple[PodRun, dict[str, float]],
) -> None:
    pod_run, _ = run
    catalog = pod_run.address("catalog-1")
    status, body = _curl(pod_run, "catalog-1", "http://127.0.0.1:19110/ready")
    assert (status, body.strip()) == (200, "LIVE")
    # From another pod: the admin API (127.0.0.1 in catalog-1's pod) is not there...
    assert _curl(pod_run, "cart-1", f"http://{catalog}:19110/ready")[0] == 0
    # ...and the service's own port is, on its address (Consul's check, its sidecar).
    probe = pod_run.run_in("cart-1", ["bash", "-c", f"exec 3<>/dev/tcp/{catalog}/7110"])
    assert probe.returncode == 0


def test_the_edge_serves_rest_through_its_sidecar(run: tuple[PodRun, dict[str, float]]) -> None:
    pod_run, _ = run
    edge = f"http://{pod_run.address('edge-1')}:8080"
    status, body = _curl(pod_run, "cart-1", f"{edge}/api/v1/products?pageSize=2")
    assert status == 200, body
    assert len(json.loads(body)["products"]) == 2
    status, body = _curl(pod_run, "cart-1", f"{edge}/api/v1/users/u-1/dashboard")
    assert status == 401  # the JWT filter, with the JWKS from the user-keys volume


def test_events_reach_nats_only_through_the_mesh(run: tuple[PodRun, dict[str, float]]) -> None:
    pod_run, _ = run
    nats = pod_run.address("nats-1")
    deadline = time.monotonic() + 60
    connections: list[dict[str, object]] = []
    while time.monotonic() < deadline:  # user-1's client connects once its sidecar is up
        status, body = _curl(pod_run, "consul", f"http://{nats}:8222/connz")
        connections = json.loads(body)["connections"] if status == 200 else []
        if connections:
            break
        time.sleep(0.5)
    assert connections, "no client reached NATS"
    # Every client connection comes from NATS's own sidecar, in its own pod.
    assert {c["ip"] for c in connections} <= {nats, "127.0.0.1"}


def test_consul_sees_every_check_pass(run: tuple[PodRun, dict[str, float]]) -> None:
    pod_run, _ = run
    deadline = time.monotonic() + 30
    critical: list[dict[str, object]] = [{}]
    while critical and time.monotonic() < deadline:
        status, body = _curl(pod_run, "consul", "http://127.0.0.1:8500/v1/health/state/critical")
        critical = json.loads(body) if status == 200 else [{"consul": status}]
        time.sleep(0.5)
    assert critical == []
    status, body = _curl(pod_run, "consul", "http://127.0.0.1:8500/v1/health/service/catalog")
    assert len(json.loads(body)) == 2  # both instances, each from its own pod
