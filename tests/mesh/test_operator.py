"""The operator's path into the mesh (tools/mesh/operator.py), on the session mesh.

grpcurl reaches every service the way an operator does in a zero-trust mesh: through
the operator's own sidecar (its local listener per service), over mTLS, judged by the
intentions, which allow it reflection, health and the reads of each service. Payment's
fault knob, PaymentAdminService, is the operator's alone: every other identity that has
a listener to payment (cart's test-only one, order, storefront, the edge) gets
PERMISSION_DENIED from payment's sidecar, and the operator reaches each payment instance
on its own (the virtual services payment-1, payment-2). A caller is run where its
listener is: in its pod on a pods mesh (`ip netns exec`; the default as root), on the
host otherwise; the operator's and the edge's are on the host either way. Passes on both.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc

from harness.operator import get_fault, operator_channel, set_fault
from tests.edge.client import EdgeClient
from tools.mesh import entries
from tools.mesh.control.components import edges
from tools.mesh.edge import api
from tools.mesh.edge.mesh import Edge
from tools.mesh.operator import Operator
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import Instance

pytestmark = pytest.mark.mesh

PROTOSET = Path(__file__).resolve().parents[2] / "gen" / "descriptors" / "meshmart.protoset"

# One read per service and its request ({user} and {product}: made by the fixtures).
READS: dict[str, tuple[str, dict[str, Any]]] = {
    "user": ("UserService/GetUser", {"user_id": "{user}"}),
    "catalog": ("CatalogService/ListProducts", {"page_size": 2}),
    "inventory": ("InventoryService/GetStock", {"product_ids": ["{product}"]}),
    "cart": ("CartService/GetCart", {"user_id": "{user}"}),
    "payment": ("PaymentService/ListPayments", {"user_id": "{user}"}),
    "order": ("OrderService/ListOrders", {"user_id": "{user}"}),
    "notification": ("NotificationService/ListNotifications", {"user_id": "{user}"}),
    "analytics": ("AnalyticsService/GetPopularProducts", {"limit": 3}),
    "recommendation": ("RecommendationService/Recommend", {"user_id": "{user}"}),
    "storefront": ("StorefrontService/GetDashboard", {"user_id": "{user}"}),
}


def grpcurl(mesh: MeshPlan, *args: str) -> subprocess.CompletedProcess[str]:
    """grpcurl as the README runs it: plaintext to a loopback listener, reflection on."""
    return subprocess.run([str(mesh.bin / "grpcurl"), "-plaintext", *args],
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def shopper(mesh: MeshPlan) -> dict[str, str]:
    """A user (signed up through the edge, as a shopper would) and a product."""
    with requests.Session() as session:
        session.trust_env = False
        client = EdgeClient(Edge(mesh).url, session)
        user_id, _ = client.register()
        products = client.get("/api/v1/products?pageSize=1")
        assert products.status_code == 200, products.text
        product = products.json()["products"][0]["productId"]
    return {"user": user_id, "product": product}


def contract_services(service: str) -> list[str]:
    """The gRPC services of ``service``'s contract, from the descriptor set."""
    return sorted(f"{f.package}.{s.name}" for f in api.load_descriptor_set().file
                  if f.package.split(".")[:2] == ["meshmart", service] for s in f.service)


def test_the_operator_has_a_listener_for_every_service_and_the_entries_agree(
    mesh: MeshPlan,
) -> None:
    operator = Operator(mesh)
    ports = operator.instance.upstream_ports
    assert set(mesh.present_services()) <= set(ports)
    assert {"payment-1", "payment-2"} <= set(ports)
    assert ports["catalog"] == 32010 and ports["payment-1"] == 32041
    # What `up` checked: the operator's intentions allow exactly reflection, health, reads
    # and admin services, no one else may call an admin service, and payment-1/-2 resolve.
    assert entries.check(mesh, edges(mesh)) == []


@pytest.mark.parametrize("service", sorted(READS))
def test_grpcurl_lists_describes_and_reads_every_service_through_the_operator(
    mesh: MeshPlan, shopper: dict[str, str], service: str
) -> None:
    target = Operator(mesh).target(service)
    listed = grpcurl(mesh, target, "list")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert set(contract_services(service)) <= names, listed.stdout
    assert "grpc.health.v1.Health" in names

    own = next(s for s in contract_services(service) if not s.endswith("AdminService"))
    described = grpcurl(mesh, target, "describe", own)
    assert described.returncode == 0, described.stderr
    method, body = READS[service]
    assert f"rpc {method.split('/')[1]} (" in described.stdout, described.stdout

    request = json.dumps(body).replace("{user}", shopper["user"]).replace(
        "{product}", shopper["product"])
    package = own.rsplit(".", 1)[0]
    read = grpcurl(mesh, "-d", request, target, f"{package}.{method}")
    assert read.returncode == 0, read.stdout + read.stderr
    assert isinstance(json.loads(read.stdout), dict)

    health = grpcurl(mesh, target, "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_the_operator_may_read_but_not_write(mesh: MeshPlan) -> None:
    target = Operator(mesh).target("payment")
    charge = grpcurl(mesh, "-d", json.dumps({"idempotency_key": "operator-k1",
                                              "order_id": "o1", "user_id": "u1"}),
                     target, "meshmart.payment.v1.PaymentService/Charge")
    assert charge.returncode != 0
    assert "PermissionDenied" in charge.stdout + charge.stderr, charge.stdout + charge.stderr
    assert "RBAC: access denied" in charge.stdout + charge.stderr


def get_fault_as(mesh: MeshPlan, caller: Instance, target: str) -> str:
    """GetFault through ``target``, ``caller``'s sidecar listener for payment, run where
    that listener is: in the caller's pod with pods (`ip netns exec`, as `kubectl exec`
    would), on the host otherwise. grpcurl's output (the error, if any)."""
    command = [str(mesh.bin / "grpcurl"), "-plaintext", "-protoset", str(PROTOSET),
               target, "meshmart.payment.v1.PaymentAdminService/GetFault"]
    result = subprocess.run(mesh.in_pod(caller, command), capture_output=True, text=True,
                            timeout=30, check=False)
    return result.stdout + result.stderr


def test_payments_fault_knob_is_permission_denied_to_every_identity_but_the_operator(
    mesh: MeshPlan,
) -> None:
    callers = [mesh.instance("cart-1"),  # its test-only listener to payment
               mesh.instance("order-1"), mesh.instance("storefront-1"), Edge(mesh).instance]
    for caller in callers:
        for _ in range(2):  # round robin: both payment instances
            answer = get_fault_as(mesh, caller, caller.upstream_target("payment"))
            assert "Code: PermissionDenied" in answer, (caller.instance_id, answer)
            assert "Message: RBAC: access denied" in answer, (caller.instance_id, answer)
    operator = Operator(mesh)
    for name in ("payment", "payment-1", "payment-2"):
        answer = get_fault_as(mesh, operator.instance, operator.target(name))
        assert json.loads(answer) == {"fault": {}}, (name, answer)


async def test_the_operator_sets_a_fault_on_one_payment_instance_only(mesh: MeshPlan) -> None:
    one, other = mesh.instance("payment-1"), mesh.instance("payment-2")
    await set_fault(mesh, one, delay_ms=7)
    try:
        assert await get_fault(mesh, one) == (0.0, 7)
        assert await get_fault(mesh, other) == (0.0, 0)
    finally:
        await set_fault(mesh, one)
    assert await get_fault(mesh, one) == (0.0, 0)
    # The operator's listener for the service itself reaches one of them (round robin).
    async with operator_channel(mesh, "payment") as channel:
        reply = await payment_pb2_grpc.PaymentAdminServiceStub(channel).GetFault(
            payment_pb2.GetFaultRequest(), timeout=5)
    assert reply.fault.delay_ms == 0
