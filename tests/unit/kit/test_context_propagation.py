"""Request id, caller user id and deadline flow from an inbound RPC to outbound calls."""

from __future__ import annotations

import grpc

from services.kit.clients import channel_to, connect
from services.kit.context import request_scope
from services.kit.testing import config_for_tests, running_server
from tests.unit.kit.echo_service import SPEC, EchoClient, StringValue


async def test_request_id_from_metadata_is_used_and_generated_when_absent() -> None:
    async with running_server([SPEC]) as target, grpc.aio.insecure_channel(target) as channel:
        client = EchoClient(channel)
        given = await client.whoami(
            StringValue(), metadata=(("x-request-id", "req-123"),), timeout=5
        )
        assert given.value.split("|")[0] == "req-123"
        generated = await client.whoami(StringValue(), timeout=5)
        assert len(generated.value.split("|")[0]) == 32


async def test_connect_propagates_request_and_user_and_caps_the_deadline() -> None:
    async with running_server([SPEC]) as target:
        config = config_for_tests(upstreams={"echo": target})
        async with connect(config, "echo") as channel:
            with request_scope(request_id="req-abc", user_id="u-7", timeout=2.0):
                reply = await EchoClient(channel).whoami(StringValue(), timeout=60)
    request_id, caller, bound_user, remaining = reply.value.split("|")
    assert (request_id, caller, bound_user) == ("req-abc", "u-7", "u-7")
    # The outbound timeout of 60 s was capped to the inbound request's 2 s budget.
    assert int(remaining) <= 2


async def test_call_without_timeout_gets_the_default_deadline() -> None:
    async with running_server([SPEC]) as target:
        async with channel_to(target, default_timeout_seconds=3.0) as channel:
            reply = await EchoClient(channel).whoami(StringValue())
    assert reply.value.split("|")[2:] == ["None", "3"]
