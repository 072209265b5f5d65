"""The edge's native gRPC face, and its place in the mesh: its calls cross its own
Connect sidecar (mTLS, intentions), never a service's port."""

from __future__ import annotations

import grpc
import pytest
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc

from harness.callers import caller_channel
from tests.edge.client import EdgeClient
from tests.mesh.helpers import charge_request
from tools.mesh import envoy
from tools.mesh.edge.mesh import Edge
from tools.mesh.http import get_json

pytestmark = pytest.mark.mesh


def _target(edge: Edge) -> str:
    return f"{edge.plan.address}:{edge.settings.port}"


async def test_grpc_clients_call_public_rpcs_through_the_edge(
    api: EdgeClient, edge: Edge
) -> None:
    user = api.new_user()
    async with grpc.aio.insecure_channel(_target(edge)) as channel:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        page = await catalog.ListProducts(catalog_pb2.ListProductsRequest(page_size=2), timeout=10)
        assert len(page.products) == 2

        cart = cart_pb2_grpc.CartServiceStub(channel)
        request = cart_pb2.GetCartRequest(user_id=user.user_id)
        # The same JWT rule as for REST: no token, no cart.
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await cart.GetCart(request, timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        mine = await cart.GetCart(request, timeout=10,
                                  metadata=[("authorization", f"Bearer {user.token}")])
        assert mine.cart.user_id == user.user_id
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await cart.GetCart(cart_pb2.GetCartRequest(user_id="usr-someone-else"), timeout=10,
                               metadata=[("authorization", f"Bearer {user.token}")])
        assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_internal_rpcs_are_not_exposed_over_grpc(api: EdgeClient, edge: Edge) -> None:
    user = api.new_user()
    auth = [("authorization", f"Bearer {user.token}")]
    async with grpc.aio.insecure_channel(_target(edge)) as channel:
        payment = payment_pb2_grpc.PaymentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as charge:
            await payment.Charge(payment_pb2.ChargeRequest(), timeout=10, metadata=auth)
        assert charge.value.code() == grpc.StatusCode.UNIMPLEMENTED
        orders = order_pb2_grpc.OrderServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as recent:
            await orders.ListRecentOrders(order_pb2.ListRecentOrdersRequest(), timeout=10,
                                          metadata=auth)
        assert recent.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_edge_is_a_connect_service_with_an_upstream_per_public_service(edge: Edge) -> None:
    consul, token = edge.plan.consul_url, edge.plan.consul_token
    [entry] = get_json(f"{consul}/v1/health/service/edge?passing", token=token)
    assert entry["Service"]["ID"] == "edge-1"
    [proxy] = get_json(f"{consul}/v1/catalog/service/edge-sidecar-proxy", token=token)
    upstreams = {u["DestinationName"]: u["LocalBindPort"]
                 for u in proxy["ServiceProxy"]["Upstreams"]}
    assert set(upstreams) == set(edge.callees)
    assert {"user", "catalog", "cart", "order", "storefront"} <= set(upstreams)
    # The edge Envoy's clusters point at those listeners, not at the services' ports.
    assert edge.targets() == {n: (edge.plan.address, p) for n, p in upstreams.items()}


def test_rest_calls_cross_the_edge_sidecar_over_mtls(api: EdgeClient, edge: Edge) -> None:
    sidecar = edge.instance.admin_url
    before = envoy.upstream_stat(sidecar, "user", "upstream_rq_total")
    handshakes = envoy.upstream_stat(sidecar, "user", "ssl.handshake")
    api.new_user()  # Register + Login: two calls to user
    assert envoy.upstream_stat(sidecar, "user", "upstream_rq_total") >= before + 2
    # The edge sidecar's connection to user's sidecar is TLS (Connect mTLS).
    assert envoy.upstream_stat(sidecar, "user", "ssl.handshake") >= max(handshakes, 1)


async def test_intentions_let_the_edge_call_only_public_rpcs(edge: Edge) -> None:
    """Even a call that got past the edge's routes would stop at the mesh: straight into
    the edge sidecar's payment listener, as the edge, Charge is denied by the intention."""
    target = f"{edge.plan.address}:{edge.instance.upstream_ports['payment']}"
    async with grpc.aio.insecure_channel(target) as channel:
        payment = payment_pb2_grpc.PaymentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await payment.Charge(payment_pb2.ChargeRequest(), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "RBAC" in (denied.value.details() or "")
        listed = await payment.ListPayments(
            payment_pb2.ListPaymentsRequest(user_id="usr-nobody"), timeout=10)
        assert list(listed.payments) == []


async def test_only_the_edge_and_who_passes_its_requests_on_may_assert_an_end_user(
    api: EdgeClient, edge: Edge
) -> None:
    # Every service believes x-meshmart-user-id only from the mesh identities of
    # topology.toml's asserts_users and the edge, judged by the mTLS peer its sidecar
    # forwards (x-forwarded-client-cert).
    user = api.new_user()
    claim = [("x-meshmart-user-id", user.user_id)]
    listing = payment_pb2.ListPaymentsRequest(user_id=user.user_id, page_size=1)

    # The edge, with the user's JWT: it verified the token and asserts its user.
    async with grpc.aio.insecure_channel(_target(edge)) as channel:
        payments = payment_pb2_grpc.PaymentServiceStub(channel)
        listed = await payments.ListPayments(
            listing, timeout=10, metadata=[("authorization", f"Bearer {user.token}")]
        )
    assert list(listed.payments) == []

    # storefront passes on the edge's requests: it may assert the user too.
    storefront = edge.plan.instance("storefront-1")
    async with caller_channel(edge.plan, storefront, "payment") as channel:
        listed = await payment_pb2_grpc.PaymentServiceStub(channel).ListPayments(
            listing, timeout=10, metadata=claim
        )
    assert list(listed.payments) == []

    # cart may call catalog (an intention allows it), but not in a user's name.
    cart = edge.plan.instance("cart-1")
    async with caller_channel(edge.plan, cart, "catalog") as channel:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        products = catalog_pb2.ListProductsRequest(page_size=1)
        assert len((await catalog.ListProducts(products, timeout=10)).products) == 1
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await catalog.ListProducts(products, timeout=10, metadata=claim)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.details() == "caller cart may not assert an end user"


async def test_a_charge_with_a_made_up_user_on_payments_own_port_is_refused(edge: Edge) -> None:
    # The walk-around: grpcurl -plaintext <payment's port> ... Charge with a
    # made-up x-meshmart-user-id. No sidecar in between, so no mesh identity either.
    plan, payment = edge.plan, edge.plan.instance("payment-1")
    forged = [("x-meshmart-user-id", "usr-victim")]
    if plan.pods:
        # In a pod the port is on the pod's own loopback: from the host, at payment's
        # address, nothing answers (from another pod: tests/mesh/test_pods.py).
        async with grpc.aio.insecure_channel(payment.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as unreachable:
                await payment_pb2_grpc.PaymentServiceStub(channel).Charge(
                    charge_request("usr-victim"), timeout=10, metadata=forged)
        assert unreachable.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Connection refused" in (unreachable.value.details() or ""), (
            unreachable.value.details())
    # Where the port is (in payment's pod, through a port forward, or on the shared
    # loopback), the forged user is refused: the call came through no sidecar.
    with plan.reach(payment, payment.port) as target:
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await payment_pb2_grpc.PaymentServiceStub(channel).Charge(
                    charge_request("usr-victim"), timeout=10, metadata=forged)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "outside the mesh" in (denied.value.details() or "")
