"""Auth and error mapping at the edge: the HTTP status and the JSON body {code, message,
details} for each gRPC status, and the JWT checks, through the real edge and mesh."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.edge.client import ADDRESS, VISA_OK, EdgeClient, User, error_of
from tools.mesh.edge import api as edge_api
from tools.mesh.edge.mesh import Edge

pytestmark = pytest.mark.mesh

# google.rpc.Code values
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED = 3, 5, 6, 7
DEADLINE_EXCEEDED, FAILED_PRECONDITION, UNAUTHENTICATED = 4, 9, 16


def _token(key: rsa.RSAPrivateKey, kid: str, user_id: str, expires_in: int) -> str:
    now = int(time.time())
    claims = {"iss": "meshmart", "aud": "meshmart", "sub": user_id, "iat": now,
              "nbf": now - 120, "exp": now + expires_in, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _signing_key(edge: Edge) -> rsa.RSAPrivateKey:
    pem = (edge.plan.run_dir / "keys" / "jwt-signing.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _cart(api: EdgeClient, user: User, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = api.get(f"/api/v1/users/{user.user_id}/cart", headers=headers)
    return response.status_code, (error_of(response) if response.status_code != 200 else {})


def test_user_routes_need_a_valid_token(api: EdgeClient, edge: Edge) -> None:
    user = api.new_user()
    kid = jwt.get_unverified_header(user.token)["kid"]
    real_key = _signing_key(edge)
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert _cart(api, user, user.token)[0] == 200
    # Missing, malformed, signed by another key (same kid), expired: 401 with JSON.
    for token in (
        None,
        "not-a-jwt",
        _token(forged_key, kid, user.user_id, 600),
        _token(real_key, kid, user.user_id, -600),
    ):
        status, body = _cart(api, user, token)
        assert status == 401, token
        assert body["code"] == UNAUTHENTICATED
    # The same holds for the native gRPC face: see test_grpc_face.py.


def test_the_user_comes_from_the_token_not_from_a_header(api: EdgeClient) -> None:
    alice, bob = api.new_user(), api.new_user()
    # Alice claims to be Bob through the header the edge forwards to services: the edge
    # drops it and forwards the user of her token, so Bob's cart stays Bob's.
    spoofed = api.get(f"/api/v1/users/{bob.user_id}/cart",
                      headers={**alice.auth, "x-meshmart-user-id": bob.user_id})
    assert spoofed.status_code == 403
    assert error_of(spoofed)["code"] == PERMISSION_DENIED


def test_another_users_order_is_forbidden(api: EdgeClient) -> None:
    owner, other = api.new_user(), api.new_user()
    added = api.post(f"/api/v1/users/{owner.user_id}/cart/items", headers=owner.auth,
                     json={"productId": "sku-1001", "quantity": 1})
    assert added.status_code == 200, added.text
    placed = api.post(f"/api/v1/users/{owner.user_id}/orders", headers=owner.auth,
                      json={"idempotencyKey": uuid.uuid4().hex, "card": VISA_OK,
                            "shippingAddress": ADDRESS})
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["order"]["orderId"]

    for path in (f"/api/v1/users/{owner.user_id}/orders/{order_id}",
                 f"/api/v1/users/{owner.user_id}/orders"):
        response = api.get(path, headers=other.auth)
        assert response.status_code == 403, path
        body = error_of(response)
        assert body["code"] == PERMISSION_DENIED and other.user_id in body["message"]
    assert api.get(f"/api/v1/users/{owner.user_id}/orders/{order_id}",
                   headers=owner.auth).status_code == 200


def test_invalid_input_is_400_naming_the_field(api: EdgeClient) -> None:
    user = api.new_user()
    response = api.post(f"/api/v1/users/{user.user_id}/cart/items", headers=user.auth,
                        json={"productId": "sku-1001", "quantity": 0})
    assert response.status_code == 400
    body = error_of(response)
    assert body["code"] == INVALID_ARGUMENT
    [details] = body["details"]
    assert details["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in details["fieldViolations"]] == ["quantity"]

    signup = api.post("/api/v1/users", json={"email": "not-an-email", "password": "x",
                                             "fullName": ""})
    assert signup.status_code == 400
    fields = {v["field"] for d in error_of(signup)["details"] for v in d["fieldViolations"]}
    assert "email" in fields

    # JSON the transcoder cannot parse, and an unknown query parameter: 400 as well.
    broken = api.post("/api/v1/users", data=b'{"email": ', headers={
        "content-type": "application/json"})
    assert broken.status_code == 400 and error_of(broken)["code"] == INVALID_ARGUMENT
    misspelt = api.get("/api/v1/products", params={"pagesize": 2})
    assert misspelt.status_code == 400 and "pagesize" in error_of(misspelt)["message"]


def test_not_found(api: EdgeClient) -> None:
    missing = api.get("/api/v1/products/sku-does-not-exist")
    assert missing.status_code == 404 and error_of(missing)["code"] == NOT_FOUND
    no_route = api.get("/api/v1/no-such-thing")
    assert no_route.status_code == 404 and error_of(no_route)["code"] == NOT_FOUND
    # Internal RPCs have no REST face: the JSON POST a gRPC path would take goes nowhere.
    charge = api.post("/meshmart.payment.v1.PaymentService/Charge", json={})
    assert charge.status_code == 404 and error_of(charge)["code"] == NOT_FOUND


def test_conflicts_are_409(api: EdgeClient) -> None:
    user = api.new_user()
    # ALREADY_EXISTS: the email is taken.
    again = api.post("/api/v1/users", json={"email": user.email, "password": "another one",
                                            "fullName": "Twin"})
    assert again.status_code == 409 and error_of(again)["code"] == ALREADY_EXISTS
    # FAILED_PRECONDITION: ordering an empty cart (Envoy alone would say 400).
    empty = api.post(f"/api/v1/users/{user.user_id}/orders", headers=user.auth,
                     json={"idempotencyKey": uuid.uuid4().hex, "card": VISA_OK,
                           "shippingAddress": ADDRESS})
    assert empty.status_code == 409
    assert error_of(empty)["code"] == FAILED_PRECONDITION
    # No gRPC-only header leaks to REST clients.
    assert not {h for h in empty.headers if h.lower().startswith("grpc-")}


def test_a_body_over_the_limit_is_refused(api: EdgeClient, edge: Edge) -> None:
    huge = "x" * (edge.settings.max_request_bytes + 1)
    response = api.post("/api/v1/users", json={"email": "a@example.com", "password": huge,
                                               "fullName": "Big"})
    assert response.status_code == 413
    assert error_of(response)["code"] == INVALID_ARGUMENT


async def test_a_service_slower_than_the_route_timeout_is_a_504_not_an_empty_200(
    api: EdgeClient, edge: Edge
) -> None:
    from harness.operator import set_fault

    user = api.new_user()
    payments = edge.plan.topology.instances_of("payment", edge.plan.address)
    timeout_s = edge_api.USER_READ.timeout_s
    try:
        for inst in payments:  # every read of payment now takes longer than the route allows
            await set_fault(edge.plan, inst, delay_ms=int((timeout_s + 2) * 1000))
        started = time.monotonic()
        response = await asyncio.to_thread(
            api.get, f"/api/v1/users/{user.user_id}/payments", headers=user.auth)
        elapsed = time.monotonic() - started
    finally:
        for inst in payments:
            await set_fault(edge.plan, inst)
    assert response.status_code == 504, response.text
    assert error_of(response)["code"] == DEADLINE_EXCEEDED
    assert timeout_s - 0.5 < elapsed < timeout_s + 1.5
