"""An end user (x-meshmart-user-id) is believed only from a caller allowed to assert one,
told apart by the mTLS peer the callee's sidecar forwards (x-forwarded-client-cert)."""

from __future__ import annotations

import grpc
import pytest

from services.kit.clients import connect
from services.kit.context import asserted_user, mesh_caller, request_scope
from services.kit.errors import PermissionDenied
from services.kit.testing import config_for_tests, running_server
from tests.unit.kit.echo_service import SPEC, EchoClient, StringValue

ASSERTERS = frozenset({"edge", "storefront"})
TRUST_DOMAIN = "spiffe://11111111-2222-3333-4444-555555555555.consul"


def peer(service: str) -> str:
    """One XFCC element as Consul's public listener appends it (cert and chain cut)."""
    uri = f"{TRUST_DOMAIN}/ns/default/dc/dc1/svc/{service}"
    return (f'By={TRUST_DOMAIN}/ns/default/dc/dc1/svc/payment;Hash=ab12;Cert="-----BEGIN%20'
            f'CERTIFICATE-----";Chain="x";Subject="CN=a, O=b; c";URI={uri};DNS=x.local')


def test_the_immediate_peer_is_the_last_element_whatever_the_caller_sent() -> None:
    assert mesh_caller(peer("storefront")) == "storefront"
    # A caller may send its own header first; its sidecar's hop comes last.
    assert mesh_caller(f"{peer('edge')},{peer('catalog')}") == "catalog"
    assert mesh_caller(None) is None
    assert mesh_caller('Hash=ab;Subject="x"') is None


def test_a_user_is_believed_only_from_an_asserter() -> None:
    assert asserted_user("u-1", peer("edge"), ASSERTERS) == "u-1"
    assert asserted_user(None, peer("catalog"), ASSERTERS) is None
    with pytest.raises(PermissionDenied, match="caller catalog may not assert an end user"):
        asserted_user("u-1", peer("catalog"), ASSERTERS)
    with pytest.raises(PermissionDenied, match="outside the mesh"):
        asserted_user("u-1", None, ASSERTERS)
    # No mesh in front (run-local, in-process tests): the header as sent.
    assert asserted_user("u-1", None, None) == "u-1"


async def whoami(client: EchoClient, user: str, xfcc: str | None) -> StringValue:
    metadata = [("x-meshmart-user-id", user)]
    if xfcc is not None:
        metadata.append(("x-forwarded-client-cert", xfcc))
    return await client.whoami(StringValue(), metadata=tuple(metadata), timeout=5)


async def test_the_server_refuses_a_user_asserted_by_another_caller() -> None:
    config = config_for_tests("payment", user_asserters=ASSERTERS)
    async with running_server([SPEC], config) as target, grpc.aio.insecure_channel(
        target
    ) as channel:
        client = EchoClient(channel)
        reply = await whoami(client, "u-1", peer("storefront"))
        assert reply.value.split("|")[1:3] == ["u-1", "u-1"]
        for xfcc, named in ((peer("catalog"), "caller catalog"), (None, "outside the mesh")):
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await whoami(client, "u-1", xfcc)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert named in (denied.value.details() or "")


async def test_a_service_that_may_not_assert_users_does_not_pass_them_on() -> None:
    async with running_server([SPEC]) as target:
        for name, passed_on in (("storefront", "u-7"), ("cart", "None")):
            config = config_for_tests(name, upstreams={"echo": target}, user_asserters=ASSERTERS)
            async with connect(config, "echo") as channel:
                with request_scope(user_id="u-7"):
                    reply = await EchoClient(channel).whoami(StringValue(), timeout=5)
            assert reply.value.split("|")[2] == passed_on, name
