"""Per-RPC context: who is calling, which request this is, and by when it must finish.

The server interceptor fills these context variables for the duration of each RPC
(every RPC runs in its own asyncio task, so they never leak between calls); the client
interceptor in clients.py reads them to propagate the request downstream.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from services.kit import validate
from services.kit.errors import PermissionDenied

REQUEST_ID_KEY = "x-request-id"
USER_ID_KEY = "x-meshmart-user-id"
TRACEPARENT_KEY = "traceparent"


@dataclass(frozen=True, slots=True)
class RequestScope:
    request_id: str
    user_id: str | None = None
    traceparent: str | None = None
    # Absolute time.monotonic() deadline of the inbound RPC, so outbound calls never
    # outlive it.
    deadline: float | None = None


# One variable holding one immutable record: a single set/reset per RPC keeps the
# per-call overhead small (the service must do thousands of RPCs per second per core).
_scope: ContextVar[RequestScope | None] = ContextVar("meshmart_request_scope", default=None)


def new_request_id() -> str:
    return os.urandom(16).hex()


def current_scope() -> RequestScope | None:
    return _scope.get()


def current_request_id() -> str | None:
    scope = _scope.get()
    return None if scope is None else scope.request_id


def current_user_id() -> str | None:
    scope = _scope.get()
    return None if scope is None else scope.user_id


def current_traceparent() -> str | None:
    scope = _scope.get()
    return None if scope is None else scope.traceparent


def current_trace_id() -> str | None:
    """The W3C trace id (second field of ``traceparent``), if the caller sent one."""
    parent = current_traceparent()
    if parent is None:
        return None
    parts = parent.split("-")
    return parts[1] if len(parts) >= 4 and len(parts[1]) == 32 else None


def remaining_seconds() -> float | None:
    """Seconds left before the inbound RPC's deadline, or None if it has none."""
    scope = _scope.get()
    if scope is None or scope.deadline is None:
        return None
    return scope.deadline - time.monotonic()


@contextmanager
def request_scope(
    *,
    request_id: str | None = None,
    user_id: str | None = None,
    traceparent: str | None = None,
    timeout: float | None = None,
) -> Iterator[str]:
    """Bind the per-RPC values for the enclosed block; yields the request id used.

    Also used outside RPCs (background jobs, event consumers) to give their outbound
    calls and log lines a request id.
    """
    scope = RequestScope(
        request_id=request_id or new_request_id(),
        user_id=user_id,
        traceparent=traceparent,
        deadline=None if timeout is None else time.monotonic() + timeout,
    )
    token = _scope.set(scope)
    try:
        yield scope.request_id
    finally:
        _scope.reset(token)


def metadata_value(metadata: Any, key: str) -> str | None:
    """First value of ``key`` in gRPC metadata (pairs or grpc.aio.Metadata)."""
    for item_key, value in metadata or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def caller_user_id(context: Any) -> str | None:
    """The verified user id the edge forwards as metadata, or None for internal callers.

    ``context`` is the grpc.aio.ServicerContext of the current RPC.
    """
    value = metadata_value(context.invocation_metadata(), USER_ID_KEY)
    return value or None


def ensure_caller_may_act_for(context: Any, user_id: str) -> None:
    """Refuse a user-scoped RPC whose forwarded caller is a different user.

    Internal callers (no forwarded user id) are trusted: the mesh's intentions decide
    who may call at all.
    """
    caller = caller_user_id(context)
    if caller is not None and caller != user_id:
        raise PermissionDenied(f"user {caller} may not act for user {user_id}")


def acting_user(context: Any, user_id: str) -> str:
    """``user_id`` of a user-scoped request, checked: not empty (INVALID_ARGUMENT naming
    user_id) and the forwarded caller's own (PERMISSION_DENIED otherwise)."""
    user_id = validate.non_empty(user_id, "user_id")
    ensure_caller_may_act_for(context, user_id)
    return user_id
