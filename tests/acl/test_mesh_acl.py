"""A whole mesh with Consul ACLs on (default deny): every instance and sidecar runs with
its own service's token, the tools with the management token, and what the issue's
zero-trust notes claim holds on the real parts.

The mesh is the session's (tests/conftest.py), which runs with topology.toml's setting,
ACLs on; under `make test ACL=0` this module starts a mesh of its own with them on (its
own address and run directory, stopped at the end of the module), so these claims are
tested either way.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import requests
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc

from harness.callers import caller_channel
from harness.host import free_mesh_address
from harness.mesh import running
from harness.wait import until
from tests.browser import TIMEOUT_MS, chromium, consul_ui_log_in, save
from tests.conftest import TEST_ONLY_UPSTREAMS
from tests.mesh.helpers import charge_request
from tools.mesh.control.components import programs
from tools.mesh.http import get_text
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import load_topology

pytestmark = pytest.mark.mesh


@pytest.fixture(scope="module")
def acl_mesh(mesh: MeshPlan, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshPlan]:
    if mesh.acl_enabled:
        yield mesh
        return
    run_dir = tmp_path_factory.mktemp("acl-mesh")
    topology = load_topology()
    address = free_mesh_address(topology)
    plan = MeshPlan(topology=topology, address=address, run_dir=run_dir,
                    extra_upstreams=TEST_ONLY_UPSTREAMS, acl=True)
    with running(plan):
        yield plan


def call(plan: MeshPlan, method: str, path: str, token: str | None = None,
         body: Any = None) -> requests.Response:
    headers = {} if token is None else {"X-Consul-Token": token}
    return requests.request(method, f"{plan.consul_url}{path}", headers=headers, timeout=10,
                            data=None if body is None else json.dumps(body))


def token(plan: MeshPlan, name: str) -> str:
    path = plan.token_file(name)
    assert path is not None
    return path.read_text().strip()


def test_every_instance_and_sidecar_runs_with_its_own_services_token(acl_mesh: MeshPlan) -> None:
    assert stat.S_IMODE(acl_mesh.tokens_dir.stat().st_mode) == 0o700
    for path in acl_mesh.tokens_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    by_name = {p.name: p for p in programs(acl_mesh)}
    for inst in acl_mesh.instances():
        own = str(acl_mesh.token_file(inst.service))
        assert by_name[inst.instance_id].env["MESHMART_CONSUL_TOKEN_FILE"] == own
        sidecar = by_name[f"{inst.instance_id}-sidecar"].command
        assert sidecar[sidecar.index("-token-file") + 1] == own
    # Each of those tokens is its service's identity, and nothing else.
    for service in {i.service for i in acl_mesh.instances()}:
        answer = call(acl_mesh, "GET", "/v1/acl/token/self", token(acl_mesh, service)).json()
        assert answer["ServiceIdentities"] == [{"ServiceName": service}], service
        assert not answer.get("Policies"), service


def test_without_a_token_the_running_mesh_lists_nothing_and_takes_no_write(
    acl_mesh: MeshPlan,
) -> None:
    operator = token(acl_mesh, "operator")
    assert "payment" in call(acl_mesh, "GET", "/v1/catalog/services", operator).json()
    assert call(acl_mesh, "GET", "/v1/catalog/services").json() == {}
    assert call(acl_mesh, "GET", "/v1/health/service/payment").json() == []
    register = call(acl_mesh, "PUT", "/v1/agent/service/register", None,
                    {"Name": "payment", "ID": "payment-9", "Port": 7149})
    assert register.status_code == 403
    # The operator's token, which `make up` prints for the UI, writes nothing either.
    assert call(acl_mesh, "PUT", "/v1/agent/service/register", operator,
                {"Name": "payment", "ID": "payment-9", "Port": 7149}).status_code == 403


async def test_an_l7_intention_whose_permissions_match_nothing_falls_through_to_deny(
    acl_mesh: MeshPlan,
) -> None:
    """With ACLs deciding the default, a request no permission matches is denied even
    without the trailing explicit deny the recipe prescribes for ACLs off."""
    management = token(acl_mesh, "management")
    path = "/v1/config/service-intentions/payment"
    original = call(acl_mesh, "GET", path, management).json()
    # cart (the test-only caller) may list payments, and nothing else is said.
    entry = {"Kind": "service-intentions", "Name": "payment",
             "Sources": [*original["Sources"], {"Name": "cart", "Permissions": [
                 {"Action": "allow", "HTTP": {
                     "PathExact": "/meshmart.payment.v1.PaymentService/ListPayments"}}]}]}
    assert call(acl_mesh, "PUT", "/v1/config", management, entry).json() is True
    cart = acl_mesh.instance("cart-1")
    payments = [i for i in acl_mesh.instances() if i.service == "payment"]

    def every_payment_sidecar_names_cart() -> bool:
        # Each payment sidecar's RBAC filter has cart's SPIFFE identity once it got the
        # new intention over xDS (before, nothing of payment's mentioned cart).
        return all("/svc/cart" in get_text(f"{p.admin_url}/config_dump?resource="
                                            "dynamic_listeners") for p in payments)

    await until(every_payment_sidecar_names_cart, 60, "payment's sidecars got cart's rule",
                in_thread=True)
    try:
        async with caller_channel(acl_mesh, cart, "payment") as channel:
            as_cart = payment_pb2_grpc.PaymentServiceStub(channel)
            for _ in range(4):  # round robin: both instances, twice
                listed = await as_cart.ListPayments(
                    payment_pb2.ListPaymentsRequest(user_id="acl-user"), timeout=5)
                assert listed is not None
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await as_cart.Charge(charge_request(), timeout=5)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "RBAC" in (caught.value.details() or "")
    finally:
        restore = {k: original[k] for k in ("Kind", "Name", "Sources")}
        assert call(acl_mesh, "PUT", "/v1/config", management, restore).json() is True


def test_the_consul_ui_logged_in_read_only_shows_no_default_allow_warning(
    acl_mesh: MeshPlan,
) -> None:
    operator = acl_mesh.token_file("operator")
    assert operator is not None
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            consul_ui_log_in(context, acl_mesh.consul_url, operator)
            page = context.new_page()
            page.goto(f"{acl_mesh.consul_url}/ui/dc1/services/order/topology",
                      timeout=TIMEOUT_MS)
            for upstream in ("user", "cart", "inventory", "payment"):
                page.get_by_text(upstream, exact=True).first.wait_for(timeout=TIMEOUT_MS)
            save(page, "consul-order-topology-acl")
            text = page.inner_text("body")
            assert "default allow" not in text.lower(), text
        finally:
            context.close()
