"""A tiny gRPC service for kit tests, built from generic handlers and well-known types
so the kit is tested without depending on any shop contract."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from services.kit import context as rpc_context
from services.kit import validate
from services.kit.errors import DomainError, FailedPrecondition, NotFound, PermissionDenied
from services.kit.logging import get_logger
from services.kit.server import ServiceSpec

SERVICE = "meshmart.kittest.v1.EchoService"
log = get_logger("kittest")

StringValue = wrappers_pb2.StringValue
DoubleValue = wrappers_pb2.DoubleValue

DOMAIN_ERRORS: dict[str, type[DomainError]] = {
    "not-found": NotFound,
    "precondition": FailedPrecondition,
    "denied": PermissionDenied,
}


async def echo(request: Any, context: Any) -> Any:
    """Echo the value; some values trigger the error paths under test."""
    if request.value in DOMAIN_ERRORS:
        raise DOMAIN_ERRORS[request.value](f"{request.value} requested")
    if request.value == "invalid":
        validate.in_range(0, 1, 99, "items[0].quantity")
    if request.value == "crash":
        raise RuntimeError("secret internals: password=hunter2")
    return StringValue(value=request.value)


async def whoami(request: Any, context: Any) -> Any:
    """What the kit knows about this call: request id, user id, deadline left."""
    remaining = rpc_context.remaining_seconds()
    return StringValue(
        value=f"{rpc_context.current_request_id()}|{rpc_context.caller_user_id(context)}"
        f"|{rpc_context.current_user_id()}|{'none' if remaining is None else round(remaining)}"
    )


async def slow(request: Any, context: Any) -> Any:
    """Sleep ``request.value`` seconds: an RPC that is in flight during shutdown."""
    log.info("slow.started", seconds=request.value)
    await asyncio.sleep(request.value)
    log.info("slow.finished")
    return DoubleValue(value=request.value)


async def count(request: Any, context: Any) -> Any:
    for i in range(3):
        yield StringValue(value=str(i))
    if request.value == "crash":
        raise RuntimeError("secret internals in a stream")


def _unary(fn: Any, request_type: Any, response_type: Any) -> Any:
    return grpc.unary_unary_rpc_method_handler(
        fn,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


def add_to_server(server: Any) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": _unary(echo, StringValue, StringValue),
            "WhoAmI": _unary(whoami, StringValue, StringValue),
            "Slow": _unary(slow, DoubleValue, DoubleValue),
            "Count": grpc.unary_stream_rpc_method_handler(
                count,
                request_deserializer=StringValue.FromString,
                response_serializer=StringValue.SerializeToString,
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))


SPEC = ServiceSpec(name=SERVICE, add=add_to_server)


class EchoClient:
    """Typed-enough callables for the echo service on a channel."""

    def __init__(self, channel: Any) -> None:
        def unary(method: str, request_type: Any, response_type: Any) -> Any:
            return channel.unary_unary(
                f"/{SERVICE}/{method}",
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )

        self.echo = unary("Echo", StringValue, StringValue)
        self.whoami = unary("WhoAmI", StringValue, StringValue)
        self.slow = unary("Slow", DoubleValue, DoubleValue)
        self.count = channel.unary_stream(
            f"/{SERVICE}/Count",
            request_serializer=StringValue.SerializeToString,
            response_deserializer=StringValue.FromString,
        )
