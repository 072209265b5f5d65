"""RecommendationService's behaviour, one suite for every implementation (Python v1, Go
v2): each test runs once per implementation, each as its real process, over real gRPC,
against the real in-process shop (orders placed through the real saga, products from the
real catalog, users from the real user service). A rule one implementation breaks fails
here, in its own parametrisation.
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from meshmart.catalog.v1 import catalog_pb2
from meshmart.order.v1 import order_pb2
from meshmart.recommendation.v1 import recommendation_pb2

from harness.host import free_port
from harness.recommendation import Implementation, start
from harness.shop import CAPTURE_CARD, DECLINE_CARD, Shop, running_shop
from services.catalog.seed import SEED_PRODUCTS
from tests.contract.implementations import running
from tests.contract.upstreams import hanging_order
from tests.unit.bad_request import violations
from tests.unit.recommendation.net import black_hole, closed_port_target

PERSONALIZED = recommendation_pb2.RECOMMENDATION_SOURCE_PERSONALIZED
POPULAR = recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR
SERVICE = "meshmart.recommendation.v1.RecommendationService"
TIMEOUT = 10.0
# How far above a caller's deadline a hop may read it (see the deadline test).
DEADLINE_RESOLUTION_SECONDS = 0.01
BY_POPULARITY = [
    p.product_id for p in sorted(SEED_PRODUCTS, key=lambda p: (-p.popularity, p.product_id))
]
_keys = itertools.count(1)


def upstreams(shop: Shop) -> dict[str, str]:
    """The shop's order, catalog and user: running(implementation, **upstreams(shop))."""
    return {name: shop.targets[name] for name in ("order", "catalog", "user")}


def request(user_id: str, limit: int = 0) -> recommendation_pb2.RecommendRequest:
    return recommendation_pb2.RecommendRequest(user_id=user_id, limit=limit)


def ids(response: recommendation_pb2.RecommendResponse) -> list[str]:
    return [p.product_id for p in response.products]


async def buy(shop: Shop, *product_ids: str, card: str = CAPTURE_CARD) -> str:
    """A new user orders the products (one each) through the real saga; returns the user."""
    user = await shop.register()
    for product_id in product_ids:
        await shop.add_to_cart(user.user_id, product_id)
    order = await shop.place_order(user.user_id, f"contract-{next(_keys)}", card)
    if card == CAPTURE_CARD:
        assert order.state == order_pb2.Order.STATE_CONFIRMED, order.cancel_reason
    return user.user_id


# --- rules of the answer ------------------------------------------------------------


async def test_recommends_what_others_bought_with_the_users_products(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010", "sku-1020")
        await buy(shop, "sku-1001", "sku-1010")
        await buy(shop, "sku-1030", "sku-1031")  # nothing in common with ann
        ann = await buy(shop, "sku-1001")
        catalog_answer: catalog_pb2.GetProductResponse = await shop.catalog.GetProduct(
            catalog_pb2.GetProductRequest(product_id="sku-1010"), timeout=TIMEOUT
        )
        async with running(implementation, **upstreams(shop)) as rec:
            top_two = await rec.stub.Recommend(request(ann, 2), timeout=TIMEOUT)
            default = await rec.stub.Recommend(request(ann), timeout=TIMEOUT)

    assert top_two.source == PERSONALIZED
    # sku-1010 was ordered next to ann's sku-1001 twice, sku-1020 once.
    assert ids(top_two) == ["sku-1010", "sku-1020"]
    assert top_two.products[0] == catalog_answer.product  # the full catalog product
    # limit 0 means 10: personal picks first, then popular ones, never ann's own.
    assert default.source == PERSONALIZED
    assert ids(default)[:2] == ["sku-1010", "sku-1020"]
    assert len(set(ids(default))) == 10
    assert "sku-1001" not in ids(default)


async def test_a_user_without_history_gets_the_most_ordered_products_flagged_popular(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1030", "sku-1031")
        await buy(shop, "sku-1031")
        # Declined: the order is CANCELLED, so sku-1040 was never bought.
        await buy(shop, "sku-1040", card=DECLINE_CARD)
        await buy(shop, "sku-1040", card=DECLINE_CARD)
        newcomer = await shop.register()
        async with running(implementation, **upstreams(shop)) as rec:
            response = await rec.stub.Recommend(request(newcomer.user_id, 2), timeout=TIMEOUT)

    assert response.source == POPULAR
    assert ids(response) == ["sku-1031", "sku-1030"]


async def test_without_any_orders_the_catalogs_popularity_decides(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        newcomer = await shop.register()
        async with running(implementation, **upstreams(shop)) as rec:
            response = await rec.stub.Recommend(request(newcomer.user_id, 5), timeout=TIMEOUT)

    assert response.source == POPULAR
    assert ids(response) == BY_POPULARITY[:5]


async def test_an_unknown_user_is_not_found_naming_the_user(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010")
        async with running(implementation, **upstreams(shop)) as rec:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await rec.stub.Recommend(request("usr-nobody-knows", 5), timeout=TIMEOUT)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "user usr-nobody-knows not found"


async def test_surrounding_spaces_in_user_id_are_ignored(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010")
        ann = await buy(shop, "sku-1001")
        async with running(implementation, **upstreams(shop)) as rec:
            padded = await rec.stub.Recommend(request(f"  {ann} ", 1), timeout=TIMEOUT)

    assert padded.source == PERSONALIZED
    assert ids(padded) == ["sku-1010"]


# --- fallbacks and deadlines ----------------------------------------------------------


async def test_order_stopped_falls_back_to_catalog_popularity(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010")
        ann = await buy(shop, "sku-1001")
        async with running(implementation, **upstreams(shop)) as rec:
            before = await rec.stub.Recommend(request(ann, 3), timeout=TIMEOUT)
            await shop.stop_order()
            after = await rec.stub.Recommend(request(ann, 3), timeout=TIMEOUT)

    assert before.source == PERSONALIZED
    assert after.source == POPULAR
    assert ids(after) == BY_POPULARITY[:3]


async def test_user_stopped_still_gets_recommendations(
    implementation: Implementation, tmp_path: Path
) -> None:
    # Recommendations are not worth failing for: without the lookup they go on.
    async with running_shop(tmp_path) as shop:
        await buy(shop, "sku-1001", "sku-1010")
        ann = await buy(shop, "sku-1001")
        async with running(
            implementation, **{**upstreams(shop), "user": closed_port_target()}
        ) as rec:
            response = await rec.stub.Recommend(request(ann, 3), timeout=TIMEOUT)

    assert response.source == PERSONALIZED
    assert ids(response)[0] == "sku-1010"
    assert len(ids(response)) == 3


@pytest.mark.parametrize("hung", ["user", "order"])
async def test_a_hanging_user_or_order_costs_one_budget_then_popular(
    implementation: Implementation, tmp_path: Path, hung: str
) -> None:
    async with running_shop(tmp_path) as shop, black_hole() as hung_target:
        newcomer = await shop.register()
        async with running(implementation, **{**upstreams(shop), hung: hung_target}) as rec:
            started = time.monotonic()
            response = await rec.stub.Recommend(request(newcomer.user_id, 3), timeout=TIMEOUT)
            elapsed = time.monotonic() - started

    assert response.source == POPULAR
    assert ids(response) == BY_POPULARITY[:3]
    # Cut off by that upstream's budget (1 s in these tests), not left waiting on the hung
    # process.
    assert elapsed < 1.0 + 3.0


async def test_the_callers_deadline_bounds_the_upstream_calls(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop, hanging_order() as (order, hanging):
        newcomer = await shop.register()
        async with running(
            implementation,
            **{**upstreams(shop), "order": order},
            # A history budget far beyond the caller's deadline: only the deadline can
            # bound the call to order.
            env={"MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS": "30000"},
        ) as rec:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await rec.stub.Recommend(request(newcomer.user_id, 3), timeout=0.5)
            elapsed = time.monotonic() - started

    # The caller's deadline ended the call. The server learns the same deadline from
    # grpc-timeout; when its copy fires first, grpc-go resets the stream (RST_STREAM
    # CANCEL) before the client's own timer fires, and the client reads CANCELLED: a
    # race between two clocks of one deadline, not another outcome.
    error = raised.value
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED or (
        error.code() == grpc.StatusCode.CANCELLED and "RST_STREAM" in (error.details() or "")
    ), (error.code(), error.details())
    assert elapsed < 2.0
    # The order call carried (what was left of) the caller's 0.5 s, not the 30 s budget.
    # The deadline crosses two processes as grpc-timeout headers ("encoding may round up
    # arbitrarily": gRPC core's timeout_encoding.h) and is read back against another
    # process's clock, so the hop can read a little more than 0.5 s (CI saw 0.5004 s).
    assert hanging.remaining, "the implementation never called ListRecentOrders"
    remaining = hanging.remaining[0]
    assert remaining is not None and remaining <= 0.5 + DEADLINE_RESOLUTION_SECONDS


async def test_catalog_down_is_unavailable(implementation: Implementation, tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        newcomer = await shop.register()
        async with running(
            implementation, **{**upstreams(shop), "catalog": closed_port_target()}
        ) as rec:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await rec.stub.Recommend(request(newcomer.user_id), timeout=TIMEOUT)

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "catalog ListProducts failed: UNAVAILABLE"


# --- requests refused ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "limit", "field", "description"),
    [
        ("", 5, "user_id", "must not be empty"),
        ("   ", 5, "user_id", "must not be empty"),
        ("ann", 51, "limit", "must be between 1 and 50, got 51"),
        ("ann", -1, "limit", "must be between 1 and 50, got -1"),
        # Both wrong: the first field checked is reported.
        ("", 99, "user_id", "must not be empty"),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field(
    implementation: Implementation, user_id: str, limit: int, field: str, description: str
) -> None:
    # Validation comes before any upstream call (the user lookup included), so no upstream
    # needs to be running.
    nowhere = closed_port_target()
    async with running(implementation, order=nowhere, catalog=nowhere, user=nowhere) as rec:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await rec.stub.Recommend(request(user_id, limit), timeout=TIMEOUT)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == f"{field}: {description}"
    assert violations(raised.value) == [(field, description)]


async def test_another_users_recommendations_are_permission_denied(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        ann = (await shop.register()).user_id
        async with running(implementation, **upstreams(shop)) as rec:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await rec.stub.Recommend(
                    request(ann), timeout=TIMEOUT, metadata=(("x-meshmart-user-id", "bob"),)
                )
            # The caller check comes before the user lookup: refused, not NOT_FOUND.
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await rec.stub.Recommend(
                    request("usr-nobody"),
                    timeout=TIMEOUT,
                    metadata=(("x-meshmart-user-id", "bob"),),
                )
            own = await rec.stub.Recommend(
                request(ann, 2), timeout=TIMEOUT, metadata=(("x-meshmart-user-id", ann),)
            )

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == f"user bob may not act for user {ann}"
    assert unknown.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert own.source == POPULAR and len(own.products) == 2


def _peer(service: str) -> str:
    """An x-forwarded-client-cert as a sidecar's public listener appends it (cut short)."""
    domain = "spiffe://11111111-2222-3333-4444-555555555555.consul"
    return (f'By={domain}/ns/default/dc/dc1/svc/recommendation;Hash=ab;Cert="x";'
            f'Subject="CN=a, O=b";URI={domain}/ns/default/dc/dc1/svc/{service}')


async def test_a_user_is_believed_only_from_a_caller_that_may_assert_one(
    implementation: Implementation, tmp_path: Path
) -> None:
    # MESHMART_USER_ASSERTERS as `make up` sets it: the edge and the asserts_users of
    # topology.toml. The caller is the last element of x-forwarded-client-cert.
    async with running_shop(tmp_path) as shop:
        ann = (await shop.register()).user_id
        env = {"MESHMART_USER_ASSERTERS": "edge,order,recommendation,storefront"}
        async with running(implementation, **upstreams(shop), env=env) as rec:
            claim = ("x-meshmart-user-id", ann)
            refused = {}
            for caller, xfcc in (("cart", _peer("cart")), ("plaintext", None)):
                metadata = (claim,) if xfcc is None else (claim, ("x-forwarded-client-cert", xfcc))
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await rec.stub.Recommend(request(ann), timeout=TIMEOUT, metadata=metadata)
                refused[caller] = (raised.value.code(), raised.value.details())
            forged_first = f"{_peer('edge')},{_peer('cart')}"
            with pytest.raises(grpc.aio.AioRpcError) as forged:
                await rec.stub.Recommend(
                    request(ann), timeout=TIMEOUT,
                    metadata=(claim, ("x-forwarded-client-cert", forged_first)),
                )
            own = await rec.stub.Recommend(
                request(ann, 2), timeout=TIMEOUT,
                metadata=(claim, ("x-forwarded-client-cert", _peer("storefront"))),
            )

    denied = grpc.StatusCode.PERMISSION_DENIED
    assert refused["cart"] == (denied, "caller cart may not assert an end user")
    assert refused["plaintext"] == (
        denied,
        "a caller outside the mesh (no client certificate through the sidecar) may not "
        "assert an end user",
    )
    assert forged.value.details() == "caller cart may not assert an end user"
    assert own.source == POPULAR and len(own.products) == 2


# --- the process: release header, health, reflection, shutdown, configuration --------


async def test_every_answer_names_the_release_that_gave_it(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        ann = (await shop.register()).user_id
        async with running(implementation, **upstreams(shop)) as rec:
            call = rec.stub.Recommend(request(ann, 1), timeout=TIMEOUT)
            await call
            headers = await call.initial_metadata()

    assert dict(headers)["x-meshmart-version"] == implementation.version


async def test_health_and_reflection_list_the_service(implementation: Implementation) -> None:
    nowhere = closed_port_target()
    async with running(implementation, order=nowhere, catalog=nowhere, user=nowhere) as rec:
        health = health_pb2_grpc.HealthStub(rec.channel)
        statuses = [
            (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status
            for name in ("", SERVICE)
        ]
        reflection = reflection_pb2_grpc.ServerReflectionStub(rec.channel)
        listed: list[str] = []
        async for reply in reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        ):
            listed += [s.name for s in reply.list_services_response.service]

    assert statuses == [health_pb2.HealthCheckResponse.SERVING] * 2
    assert SERVICE in listed and "grpc.health.v1.Health" in listed


async def test_sigterm_turns_health_not_serving_then_drains_and_exits_0(
    implementation: Implementation, tmp_path: Path
) -> None:
    async with running_shop(tmp_path) as shop:
        ann = (await shop.register()).user_id
        async with running(
            implementation, **upstreams(shop), env={"MESHMART_DRAIN_SECONDS": "1.5"}
        ) as rec:
            health = health_pb2_grpc.HealthStub(rec.channel)
            rec.server.process.send_signal(signal.SIGTERM)
            await rec.server.wait_for("server.draining")
            during_drain = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            # Still answering while the drain lasts: callers' sidecars need the time.
            answered = await rec.stub.Recommend(request(ann, 1), timeout=TIMEOUT)
            await rec.server.wait_for("server.stopped")
        # running() asserts the exit code 0.

    assert during_drain.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert len(answered.products) == 1
    events = [r["event"] for r in rec.server.records]
    order = ["server.started", "server.signal", "server.draining", "server.stopping",
             "server.stopped"]
    assert [e for e in events if e in order] == order


ORDER = {"MESHMART_UPSTREAM_ORDER": "127.0.0.1:7150"}
CATALOG = {"MESHMART_UPSTREAM_CATALOG": "127.0.0.1:7110"}
USER = {"MESHMART_UPSTREAM_USER": "127.0.0.1:7100"}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        # Each upstream is required; the first one missing (order, catalog, user) is named.
        ({**CATALOG, **USER}, "MESHMART_UPSTREAM_ORDER"),
        ({**ORDER, **USER}, "MESHMART_UPSTREAM_CATALOG"),
        ({**ORDER, **CATALOG}, "MESHMART_UPSTREAM_USER"),
        (
            {**ORDER, **CATALOG, **USER, "MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS": "soon"},
            "MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS",
        ),
        (
            {**ORDER, **CATALOG, **USER, "MESHMART_RECOMMENDATION_USER_TIMEOUT_MS": "0"},
            "MESHMART_RECOMMENDATION_USER_TIMEOUT_MS",
        ),
    ],
)
async def test_a_bad_setting_stops_the_process_with_exit_2_naming_it(
    implementation: Implementation, env: dict[str, str], variable: str
) -> None:
    server = await start(implementation, {"MESHMART_PORT": str(free_port()), **env})
    await server.read_stderr()
    code = await server.exit_code()

    assert code == 2, server.log()
    errors = [r["error"] for r in server.records if r.get("event") == "config.invalid"]
    assert len(errors) == 1 and variable in errors[0], server.log()
