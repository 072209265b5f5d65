"""The one server interceptor: request context, the contract's request rules, error mapping
and an access log line.

grpc.aio interceptors only see the handler, not the call, so this wraps the handler's
behaviour function (the same approach as d5h-foss/grpc-interceptor). The wrapper must keep
the behaviour's kind: grpc.aio dispatches on whether it is a coroutine function (unary
response, or streaming via ``context.write``) or an async generator function.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import Token
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.kit import context as rpc_context
from services.kit import validate
from services.kit.errors import DomainError, InvalidArgument
from services.kit.logging import AccessLog, get_logger
from services.kit.metrics import rpc_metrics
from services.kit.tracing import traceparent_of_current_span

log = get_logger("meshmart.rpc")
# The access log's line per RPC (the same fields as ``log.info("rpc", ...)``, written
# without structlog's per-call logger machinery: bench/TUNING.md g.).
_access = AccessLog("meshmart.rpc")

# Health checks and reflection arrive every few seconds from Consul and operators;
# logging them at debug keeps the access log about real traffic.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Behaviour = Callable[[Any, Any], Any]
Asserters = frozenset[str] | None


def status_for(error: DomainError) -> grpc.Status:
    """The rich status (google.rpc.Status in trailing metadata) for a domain error."""
    details: list[any_pb2.Any] = []
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    for message in error.details:
        packed = any_pb2.Any()
        packed.Pack(message)
        details.append(packed)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)


class _Call:
    """Bookkeeping for one RPC: its context scope, outcome and access-log line."""

    __slots__ = ("asserters", "code", "error", "kind", "method", "refusal", "started")

    def __init__(
        self, method: str, kind: str = "unary", asserters: frozenset[str] | None = None
    ) -> None:
        self.method = method
        self.asserters = asserters
        # Why the request may not run (an end user asserted by a caller that may not):
        # raised by admit(), inside the handler's error mapping.
        self.refusal: DomainError | None = None
        self.kind = kind  # grpc_type label: "unary" or "stream" (a streamed response)
        self.code: grpc.StatusCode = grpc.StatusCode.OK
        self.error: str | None = None
        self.started = time.perf_counter()

    def enter(self, servicer_context: Any) -> Token[rpc_context.RequestScope | None]:
        """Enter the request scope of this RPC, from its metadata and deadline (left by
        finish(), once it has written the access line)."""
        wanted: dict[str, str | None] = {
            rpc_context.REQUEST_ID_KEY: None,
            rpc_context.USER_ID_KEY: None,
            rpc_context.TRACEPARENT_KEY: None,
            rpc_context.CLIENT_CERT_KEY: None,
        }
        for key, value in servicer_context.invocation_metadata() or ():
            if key in wanted and wanted[key] is None and isinstance(value, str) and value:
                wanted[key] = value
        remaining = servicer_context.time_remaining()
        try:
            user_id = rpc_context.asserted_user(
                wanted[rpc_context.USER_ID_KEY], wanted[rpc_context.CLIENT_CERT_KEY],
                self.asserters,
            )
        except DomainError as refusal:
            self.refusal, user_id = refusal, None
        return rpc_context.enter_scope(
            wanted[rpc_context.REQUEST_ID_KEY],
            user_id,
            # With tracing, this RPC's own server span (a child of the caller's), so what
            # it calls and logs hangs under it; without, the caller's, forwarded as is.
            traceparent_of_current_span() or wanted[rpc_context.TRACEPARENT_KEY],
            remaining if isinstance(remaining, int | float) else None,
        )

    def admit(self) -> None:
        """Raise the refusal enter() found, if any (first thing in the handler's try)."""
        if self.refusal is not None:
            raise self.refusal

    async def fail(self, servicer_context: Any, error: Exception) -> NoReturn:
        """Abort the RPC with the status ``error`` stands for; always raises."""
        if isinstance(error, DomainError):
            status = status_for(error)
            self.code = status.code
            self.error = error.message
            await servicer_context.abort(status.code, status.details, status.trailing_metadata)
        self.code = grpc.StatusCode.INTERNAL
        # The traceback goes to our log, never to the caller: it can reveal internals.
        log.error("rpc.unhandled_exception", method=self.method, exc_info=error)
        rid = rpc_context.current_request_id()
        await servicer_context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")
        raise AssertionError("context.abort returned")  # abort always raises

    def finish(
        self, servicer_context: Any, scope: Token[rpc_context.RequestScope | None]
    ) -> None:
        """Write the access-log line, with the code the handler may have set itself
        (context.abort / set_code) when the kit did not set one; then leave the scope."""
        try:
            self._record(servicer_context)
        finally:
            rpc_context.leave_scope(scope)

    def _record(self, servicer_context: Any) -> None:
        if self.code is grpc.StatusCode.OK:
            code = servicer_context.code()
            if isinstance(code, grpc.StatusCode):
                self.code = code
            elif isinstance(code, int) and code != 0:
                self.code = _CODES_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
        seconds = time.perf_counter() - self.started
        rpc_metrics().observe(self.method, self.kind, self.code, seconds)
        fields: dict[str, Any] = {
            "method": self.method,
            "code": self.code.name,
            "duration_ms": round(seconds * 1000, 3),
        }
        if self.error is not None:
            fields["error"] = self.error
        quiet = self.code is grpc.StatusCode.OK and self.method.startswith(_QUIET_PREFIXES)
        _access.line(fields, level="debug" if quiet else "info")


_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def _check(request: Any) -> None:
    """The rules the contract declares on the request (a client-streamed request is an
    iterator, and meshmart declares no rules for one)."""
    if isinstance(request, Message):
        validate.check(request)


def _wrap_coroutine(
    behaviour: Behaviour, method: str, asserters: Asserters, kind: str
) -> Behaviour:
    """A unary response (kind "unary"), or a streamed one written through
    ``context.write`` (kind "stream", e.g. the health Watch)."""

    async def wrapper(request: Any, servicer_context: Any) -> Any:
        call = _Call(method, kind, asserters)
        token = call.enter(servicer_context)
        try:
            call.admit()
            _check(request)
            return await behaviour(request, servicer_context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED  # client went away or deadline hit
            raise
        except Exception as error:
            await call.fail(servicer_context, error)
        finally:
            call.finish(servicer_context, token)

    return wrapper


def _wrap_stream_generator(
    behaviour: Behaviour, method: str, asserters: Asserters
) -> Behaviour:
    """Streaming response as an async generator (e.g. reflection)."""

    async def wrapper(request: Any, servicer_context: Any) -> AsyncIterator[Any]:
        call = _Call(method, "stream", asserters)
        token = call.enter(servicer_context)
        try:
            call.admit()
            _check(request)
            async for response in behaviour(request, servicer_context):
                yield response
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            await call.fail(servicer_context, error)
        finally:
            call.finish(servicer_context, token)

    return wrapper


def _wrap(behaviour: Behaviour, method: str, asserters: Asserters, *, streaming: bool) -> Behaviour:
    if inspect.isasyncgenfunction(behaviour):
        return _wrap_stream_generator(behaviour, method, asserters)
    if inspect.iscoroutinefunction(behaviour):
        return _wrap_coroutine(behaviour, method, asserters, "stream" if streaming else "unary")
    # A synchronous behaviour runs in grpc's thread pool, outside this task's context;
    # it keeps gRPC's own handling. meshmart servicers are all async.
    return behaviour


def _wrapped_handler(handler: Any, method: str, asserters: Asserters) -> Any:
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
    )
    for attribute, make, streaming in kinds:
        behaviour = getattr(handler, attribute)
        if behaviour is not None:
            return make(
                _wrap(behaviour, method, asserters, streaming=streaming),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Request context, the request rules the contract declares (validate.check, before
    the servicer sees the request), domain-error mapping and access logging for every
    RPC.

    ``user_asserters``: the mesh identities whose x-meshmart-user-id is believed
    (ServiceConfig.user_asserters; context.asserted_user).
    """

    def __init__(self, user_asserters: Asserters = None) -> None:
        self._asserters = user_asserters
        # method -> (the handler grpc found, our wrapper of it). Wrappers read everything
        # per-call from the servicer context, so one per method is enough; building a
        # new handler on every RPC would cost throughput for nothing.
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED itself
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrapped_handler(handler, method, self._asserters)
        self._wrapped[method] = (handler, wrapped)
        return wrapped
