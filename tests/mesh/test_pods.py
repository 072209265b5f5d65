"""Pods (tools/mesh/pods.py): every instance and its sidecar in its own network namespace.

A small mesh of its own on pods (the code path of `make up` as root: real Consul, Envoys
and services; catalog x2, cart, payment, with cart's test-only listener to payment that
no intention allows), on a free loopback address so it runs beside any other mesh.
What these tests prove is what the shared loopback could not: a process in another pod
cannot walk around payment's sidecar, the sidecar admits only mesh certificates, an
identity without an intention is refused, and an instance supervisord restarts comes
back in its own pod at its own address and takes calls again. And the port forward
through which the other tests call "as" a service on pods (MeshPlan.reach) carries those
calls through the caller's sidecar while it is open, and is gone after. The fixture's
teardown checks that no process, namespace or bridge of the run is left, even after a
failure.

Needs root and iproute2 (network namespaces), as CI has.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from meshmart.catalog.v1 import catalog_pb2_grpc

from harness.host import free_mesh_address
from harness.mesh import health_of, pid_of, public_http_counter, running, upstream_counter
from harness.wait import until
from tests.mesh.helpers import charge_request, list_products
from tools.mesh.http import get_json
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import Instance, load_topology

PROTOSET = Path(__file__).resolve().parents[2] / "gen" / "descriptors" / "meshmart.protoset"


@pytest.fixture(scope="module")
def pod_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshPlan]:
    assert os.geteuid() == 0 and shutil.which("ip"), (
        "pods need root and iproute2 (network namespaces)")
    topology = load_topology().only({"catalog": 2, "cart": 1, "payment": 1})
    plan = MeshPlan(topology=topology, address=free_mesh_address(topology),
                    run_dir=tmp_path_factory.mktemp("pods"), pods=True,
                    extra_upstreams={"cart": ["payment"]})
    with running(plan, timeout=300, check_entries=False):
        yield plan


def in_pod(plan: MeshPlan, inst: Instance, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` run in ``inst``'s network namespace (as `kubectl exec` would)."""
    return subprocess.run(
        [*plan.pod_network.exec_prefix(inst.instance_id), *command],
        capture_output=True, text=True, timeout=30, check=False, cwd=plan.root,
    )


CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)"

TLS_WITHOUT_CERTIFICATE = """
import socket, ssl, sys
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with context.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)) as s:
    s.recv(1)  # TLS 1.3: the server's verdict on the client's (missing) certificate
"""


def grpcurl_in_pod(plan: MeshPlan, inst: Instance, target: str, method: str,
                   body: str) -> subprocess.CompletedProcess[str]:
    return in_pod(plan, inst, str(plan.bin / "grpcurl"), "-plaintext", "-protoset",
                  str(PROTOSET), "-d", body, target, method)


def test_from_another_pod_paymentss_own_port_refuses_a_plaintext_connection(
    pod_mesh: MeshPlan,
) -> None:
    cart, payment = pod_mesh.instance("cart-1"), pod_mesh.instance("payment-1")
    # payment listens, in its own pod, on its loopback...
    inside = in_pod(pod_mesh, payment, pod_mesh.python, "-c", CONNECT, "127.0.0.1",
                    str(payment.port))
    assert inside.returncode == 0, inside.stderr
    # ...which no other pod reaches: not at payment's address, not on its own loopback.
    for host in (payment.address, "127.0.0.1"):
        outside = in_pod(pod_mesh, cart, pod_mesh.python, "-c", CONNECT, host,
                         str(payment.port))
        assert outside.returncode != 0
        assert "ConnectionRefusedError" in outside.stderr, outside.stderr


def test_paymentss_sidecar_refuses_tls_without_a_mesh_client_certificate(
    pod_mesh: MeshPlan,
) -> None:
    cart, payment = pod_mesh.instance("cart-1"), pod_mesh.instance("payment-1")
    result = in_pod(pod_mesh, cart, pod_mesh.python, "-c", TLS_WITHOUT_CERTIFICATE,
                    payment.address, str(payment.sidecar_port))
    assert result.returncode != 0
    assert "CERTIFICATE_REQUIRED" in result.stderr, result.stderr


def test_a_mesh_caller_without_an_intention_is_permission_denied(pod_mesh: MeshPlan) -> None:
    # cart's sidecar holds a valid mesh certificate for "cart"; no intention lets cart
    # call payment.
    cart = pod_mesh.instance("cart-1")
    body = json_format.MessageToJson(charge_request())
    result = grpcurl_in_pod(pod_mesh, cart, cart.upstream_target("payment"),
                            "meshmart.payment.v1.PaymentService/Charge", body)
    assert result.returncode != 0
    assert "PermissionDenied" in result.stdout + result.stderr, result.stdout + result.stderr


def namespace_of(pid: int) -> str:
    result = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()


def catalog_address(plan: MeshPlan, instance_id: str) -> str:
    for entry in get_json(f"{plan.consul_url}/v1/catalog/service/catalog",
                          token=plan.consul_token):
        if entry["ServiceID"] == instance_id:
            return str(entry["ServiceAddress"])
    return ""


async def test_a_killed_instance_restarts_in_its_pod_at_its_address_and_takes_calls(
    pod_mesh: MeshPlan,
) -> None:
    cart, catalog = pod_mesh.instance("cart-1"), pod_mesh.instance("catalog-1")
    namespace = pod_mesh.pod_network.namespace(catalog.instance_id)
    pid = pid_of(pod_mesh, catalog.instance_id)
    assert namespace_of(pid) == namespace
    assert catalog_address(pod_mesh, catalog.instance_id) == catalog.address

    os.kill(pid, signal.SIGKILL)
    await until(lambda: pid_of(pod_mesh, catalog.instance_id) not in (0, pid), 60,
                "supervisord to restart catalog-1")
    # The new pid is `ip netns exec` until it has entered the pod and exec'd the service
    # (identify answers "" in between): the restarted process ends up in its own pod.
    # (Consul's check may still read passing from before the kill: the pod and the calls
    # below are what show it is back.)
    await until(lambda: namespace_of(pid_of(pod_mesh, catalog.instance_id)) == namespace, 30,
                "the restarted catalog-1 in its own pod", in_thread=True)
    await until(lambda: health_of(pod_mesh, catalog.instance_id) == "passing", 120,
                "catalog-1 passing again", in_thread=True)
    assert catalog_address(pod_mesh, catalog.instance_id) == catalog.address

    # Back in rotation: calls from cart's pod through its sidecar reach catalog-1 again.
    served = public_http_counter(catalog, "downstream_rq_total")

    def calls_reach_catalog_1() -> bool:
        result = grpcurl_in_pod(pod_mesh, cart, cart.upstream_target("catalog"),
                                "meshmart.catalog.v1.CatalogService/ListProducts",
                                json.dumps({"page_size": 1}))
        assert result.returncode == 0, result.stdout + result.stderr
        return public_http_counter(catalog, "downstream_rq_total") > served

    await until(calls_reach_catalog_1, 60, "a call through cart's sidecar on catalog-1",
                in_thread=True, step=0.2)


async def test_the_host_reaches_a_pods_listener_through_a_port_forward_while_it_is_open(
    pod_mesh: MeshPlan,
) -> None:
    # How the tests and tools/chaos call "as cart" on pods (harness/callers.py): cart's
    # listener for catalog is on cart's own loopback, the forward's end on the host.
    cart = pod_mesh.instance("cart-1")
    sent = upstream_counter(cart, "catalog", "upstream_rq_total")
    with pod_mesh.reach(cart, cart.upstream_ports["catalog"]) as target:
        host, port = target.rsplit(":", 1)
        assert host == pod_mesh.address
        async with grpc.aio.insecure_channel(target) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            for _ in range(3):
                assert len((await list_products(stub)).products) == 1
    # The calls left through cart's sidecar (its catalog cluster made them)...
    assert upstream_counter(cart, "catalog", "upstream_rq_total") >= sent + 3
    # ...and the forward ended with the block: its process is gone, and its port with it.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), 5)
