"""The edge's config as data: what it routes, what it protects, what the mesh allows it,
and that the real Envoy accepts it. No processes besides `envoy --mode validate`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from services.user.keys import ensure_signing_key
from tools.mesh.edge import api, config
from tools.mesh.edge.mesh import COMMITTED_CONFIG, Edge
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT, load_topology

INTERNAL = {
    "/meshmart.inventory.v1.InventoryService/Reserve",
    "/meshmart.payment.v1.PaymentService/Charge",
    "/meshmart.payment.v1.PaymentAdminService/SetFault",
    "/meshmart.order.v1.OrderService/ListRecentOrders",
}
NO_TOKEN = {
    "/meshmart.user.v1.UserService/Register",
    "/meshmart.user.v1.UserService/Login",
    "/meshmart.catalog.v1.CatalogService/ListProducts",
    "/meshmart.catalog.v1.CatalogService/GetProduct",
    "/meshmart.catalog.v1.CatalogService/SearchProducts",
    "/meshmart.inventory.v1.InventoryService/GetStock",
}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Edge:
    plan = MeshPlan(topology=load_topology(), address="127.0.0.1",
                    run_dir=tmp_path_factory.mktemp("run"))
    return Edge(plan)


@pytest.fixture(scope="module")
def boot(edge: Edge) -> dict[str, object]:
    return config.bootstrap(edge.settings, edge.rpcs, edge.targets(), "127.0.0.1",
                            edge.files())


def _edge_routes(boot: dict[str, object]) -> list[dict[str, object]]:
    listener = boot["static_resources"]["listeners"][0]  # type: ignore[index]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return list(hcm["route_config"]["virtual_hosts"][0]["routes"])


def test_the_committed_envoy_config_is_current() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "tools.mesh.edge", "check"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 0, f"{COMMITTED_CONFIG}: {result.stderr}"


def test_every_public_rpc_of_the_topology_has_a_grpc_route_and_no_internal_one(
    edge: Edge, boot: dict[str, object]
) -> None:
    paths = {r["match"].get("path") for r in _edge_routes(boot)}  # type: ignore[attr-defined]
    public = {rpc.grpc_path for rpc in edge.rpcs}
    assert public <= paths
    assert not INTERNAL & paths
    assert {rpc.service_name for rpc in edge.rpcs} == set(edge.callees)
    assert {"user", "catalog", "cart", "order", "storefront", "recommendation"} <= set(
        edge.callees)


def test_user_scoped_rpcs_need_a_token_and_public_ones_do_not(edge: Edge) -> None:
    rules = config._jwt_authn(edge.rpcs, edge.files())["rules"]
    protected = {rule["match"]["path"] for rule in rules}
    public = {rpc.grpc_path for rpc in edge.rpcs}
    assert NO_TOKEN <= public
    assert protected == public - NO_TOKEN
    assert "/meshmart.order.v1.OrderService/GetOrder" in protected


def test_edge_calls_go_to_its_sidecar_listeners(edge: Edge) -> None:
    inst = edge.instance
    for name, (host, port) in edge.targets().items():
        assert host == "127.0.0.1"
        assert port == edge.settings.upstream_port_base + edge.plan.topology.services[name].slot
        assert port != edge.plan.topology.services[name].port  # never a service's own port
    assert inst.upstream_ports == {n: p for n, (_, p) in edge.targets().items()}


def test_the_intentions_allow_the_edge_exactly_the_public_rpcs(edge: Edge) -> None:
    for service in edge.callees:
        text = (ROOT / "consul" / "config-entries" / service /
                "service-intentions.hcl").read_text()
        block = re.search(r'Name\s*=\s*"edge".*?Permissions = \[(.*?)\n    \]', text, re.S)
        assert block, f"{service}: no intention for the edge"
        # Allows name exact gRPC paths; the one deny is the PathPrefix catch-all.
        allowed = set(re.findall(r'PathExact = "([^"]+)"', block.group(1)))
        assert allowed == {r.grpc_path for r in edge.rpcs if r.service_name == service}
        assert block.group(1).rstrip().endswith('{ Action = "deny", HTTP { PathPrefix = "/" } },')


def test_rate_limits_are_tighter_on_login_and_place_order() -> None:
    def rate(limit: api.RateLimit | None) -> float:
        assert limit is not None
        return limit.burst / limit.window_s

    # Per client: login per address, place-order per user, against other user calls.
    assert rate(api.LOGIN.per_client) < rate(api.USER_WRITE.per_client)
    assert rate(api.PLACE_ORDER.per_client) < rate(api.USER_WRITE.per_client)
    assert api.LOGIN.client_key == "remote_address" and api.PLACE_ORDER.client_key == "user"
    assert rate(api.PLACE_ORDER.rate_limit) < rate(api.USER_READ.rate_limit)
    assert api.LOGIN.retry_after_s == 1 and api.PLACE_ORDER.retry_after_s == 2


def test_per_client_buckets_are_keyed_on_the_verified_user(
    edge: Edge, boot: dict[str, object]
) -> None:
    routes = {r["name"]: r for r in _edge_routes(boot)}  # type: ignore[index]
    order = routes["meshmart.order.v1.OrderService.PlaceOrder"]
    [limit] = order["route"]["rate_limits"]  # type: ignore[index]
    assert limit["actions"] == [{"request_headers": {
        "header_name": "x-meshmart-user-id", "descriptor_key": "user"}}]
    login = routes["meshmart.user.v1.UserService.Login"]
    assert login["route"]["rate_limits"][0]["actions"] == [{"remote_address": {}}]  # type: ignore[index]


def test_the_served_openapi_lists_the_routed_operations_with_their_security(
    edge: Edge
) -> None:
    edge.write_files()
    doc = json.loads((edge.dir / "openapi.json").read_text())
    ops = {op["operationId"]: op for ops in doc["paths"].values() for op in ops.values()}
    assert set(ops) == {f"{r.service}_{r.method}" for r in edge.rpcs}
    for rpc in edge.rpcs:
        assert ("security" in ops[f"{rpc.service}_{rpc.method}"]) == rpc.policy.jwt


def test_envoy_accepts_the_config(edge: Edge, tmp_path: Path) -> None:
    edge.write_files()
    ensure_signing_key(edge.plan.run_dir / "keys")  # the JWKS, as the user service writes it
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "envoy"), "--mode", "validate", "-c",
         str(edge.config_path), "--log-level", "error"],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_run_may_set_its_own_place_order_bucket_and_the_default_stays() -> None:
    # The benchmark's setting widens PlaceOrder's shared bucket only; the per-user bucket,
    # every other route and the production policies stay as they are.
    policies = api.policies_from_env({api.PLACE_ORDER_RATE_SETTING: "2000"})
    place = policies["meshmart.order.v1.OrderService.PlaceOrder"]
    assert place.rate_limit == api.RateLimit(2000, 1)
    assert place.per_client == api.PLACE_ORDER.per_client
    assert api.place_order_rate(policies) == 2000
    assert api.place_order_rate() == api.PLACE_ORDER.rate_limit.burst
    assert {n: p for n, p in policies.items() if p is not place} == {
        n: p for n, p in api.POLICIES.items() if p is not api.PLACE_ORDER}
    assert api.policies_from_env({}) == api.POLICIES
    for bad in ("0", "-5", "fast"):
        with pytest.raises(ValueError, match=api.PLACE_ORDER_RATE_SETTING):
            api.policies_from_env({api.PLACE_ORDER_RATE_SETTING: bad})


def test_the_committed_config_keeps_the_production_place_order_bucket(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(api.PLACE_ORDER_RATE_SETTING, "2345")
    run = Edge(edge.plan)
    assert api.place_order_rate(run.policies) == 2345
    assert "max_tokens: 2345" in run.envoy_config()
    assert run.committed_config() == edge.committed_config()
    assert "max_tokens: 2345" not in run.committed_config()
