"""Outbound channels: one per upstream, created by a service's main and injected.

The channel's interceptor forwards the current request id, caller user id and
traceparent, applies a default deadline when a call forgot one, and never lets a call
outlive the inbound RPC it serves. Retries are Envoy's job, so there are none here.
"""

from __future__ import annotations

from typing import Any

import grpc

from services.kit import context as rpc_context
from services.kit.config import ServiceConfig
from services.kit.tracing import Tracing, configure_tracing, current_tracing

DEFAULT_TIMEOUT_SECONDS = 5.0


def outbound_metadata(existing: Any, *, propagate_user: bool = True) -> grpc.aio.Metadata:
    """``existing`` call metadata plus the current request's propagated keys (the end
    user only with ``propagate_user``: a service that may not assert one keeps it)."""
    metadata = grpc.aio.Metadata(*(tuple(existing) if existing else ()))
    request_id = rpc_context.current_request_id() or rpc_context.new_request_id()
    propagated = {
        rpc_context.REQUEST_ID_KEY: request_id,
        rpc_context.USER_ID_KEY: rpc_context.current_user_id() if propagate_user else None,
        rpc_context.TRACEPARENT_KEY: rpc_context.current_traceparent(),
    }
    for key, value in propagated.items():
        # An explicit value from the caller wins over the propagated one.
        if value is not None and key not in metadata:
            metadata[key] = value
    return metadata


def effective_timeout(requested: float | None, default: float) -> float:
    timeout = default if requested is None else requested
    remaining = rpc_context.remaining_seconds()
    if remaining is not None:
        # Work for a caller who has given up is wasted; fail fast instead.
        timeout = min(timeout, max(remaining, 0.001))
    return timeout


class PropagatingClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(
        self, default_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, propagate_user: bool = True
    ) -> None:
        self._default_timeout = default_timeout_seconds
        self._propagate_user = propagate_user

    def _details(self, details: Any) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=effective_timeout(details.timeout, self._default_timeout),
            metadata=outbound_metadata(details.metadata, propagate_user=self._propagate_user),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(details), request_iterator)

    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(details), request_iterator)


def connect(
    config: ServiceConfig,
    upstream: str,
    *,
    default_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> grpc.aio.Channel:
    """A channel to ``config.upstream(upstream)`` (raises ConfigError if unset).

    Close it on shutdown (``await channel.close()``, e.g. in an on_stop hook).
    """
    # Channels are made before serve(): tracing must exist by then to trace their calls.
    tracing = configure_tracing(config)
    return channel_to(
        config.upstream(upstream),
        default_timeout_seconds=default_timeout_seconds,
        tracing=tracing,
        # Upstreams refuse an end user from a service that may not assert one.
        propagate_user=config.asserts_users,
    )


def channel_to(
    target: str,
    *,
    default_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    tracing: Tracing | None = None,
    propagate_user: bool = True,
) -> grpc.aio.Channel:
    """A propagating channel to an explicit target (tests, tools); traced with
    ``tracing`` or the process's (services/kit/tracing.py)."""
    tracing = tracing or current_tracing()
    # OpenTelemetry's interceptors first: the call's client span and its traceparent
    # exist before the kit's interceptor fills in what is missing.
    interceptors: list[Any] = [] if tracing is None else tracing.client_interceptors()
    interceptors.append(PropagatingClientInterceptor(default_timeout_seconds, propagate_user))
    return grpc.aio.insecure_channel(target, interceptors=interceptors)
