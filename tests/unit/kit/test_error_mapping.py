"""The kit interceptor turns domain exceptions into status codes and hides crashes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.kit.server import ServiceSpec
from services.kit.testing import running_server
from tests.unit.kit.echo_service import SPEC, EchoClient, StringValue


@pytest.fixture
async def client() -> AsyncIterator[EchoClient]:
    async with running_server([SPEC]) as target, grpc.aio.insecure_channel(target) as channel:
        yield EchoClient(channel)


async def _fail(client: EchoClient, value: str) -> grpc.aio.Call:
    call = client.echo(StringValue(value=value), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await call
    return call


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("not-found", grpc.StatusCode.NOT_FOUND),
        ("precondition", grpc.StatusCode.FAILED_PRECONDITION),
        ("denied", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_domain_error_becomes_its_status_code(
    client: EchoClient, value: str, code: grpc.StatusCode
) -> None:
    call = await _fail(client, value)
    assert await call.code() == code
    assert await call.details() == f"{value} requested"


async def test_invalid_argument_names_the_field_in_bad_request_details(
    client: EchoClient,
) -> None:
    call = await _fail(client, "invalid")
    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items[0].quantity" in await call.details()

    status = await rpc_status.aio.from_call(call)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    [violation] = bad_request.field_violations
    assert violation.field == "items[0].quantity"
    assert violation.description == "must be between 1 and 99, got 0"


async def test_unexpected_exception_is_internal_without_traceback(client: EchoClient) -> None:
    call = await _fail(client, "crash")
    assert await call.code() == grpc.StatusCode.INTERNAL
    details = await call.details()
    assert details.startswith("internal error (request id ")
    for leak in ("Traceback", "RuntimeError", "hunter2", ".py"):
        assert leak not in details
    assert await rpc_status.aio.from_call(call) is None


async def test_crash_inside_a_stream_is_internal_after_the_sent_messages(
    client: EchoClient,
) -> None:
    call = client.count(StringValue(value="crash"), timeout=5)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for message in call:
            received.append(message.value)
    assert received == ["0", "1", "2"]
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (raised.value.details() or "")


async def test_success_passes_through(client: EchoClient) -> None:
    assert (await client.echo(StringValue(value="hello"), timeout=5)).value == "hello"
    assert [m.value async for m in client.count(StringValue(), timeout=5)] == ["0", "1", "2"]


async def test_handler_that_aborts_itself_keeps_its_status() -> None:
    async def teapot(request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "token expired")

    def add(server: grpc.aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "meshmart.kittest.v1.Abort",
            {
                "Abort": grpc.unary_unary_rpc_method_handler(
                    teapot,
                    request_deserializer=StringValue.FromString,
                    response_serializer=StringValue.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))

    spec = ServiceSpec(name="meshmart.kittest.v1.Abort", add=add)
    async with running_server([spec]) as target, grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/meshmart.kittest.v1.Abort/Abort",
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )(StringValue(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await call
        assert await call.code() == grpc.StatusCode.UNAUTHENTICATED
        assert await call.details() == "token expired"
