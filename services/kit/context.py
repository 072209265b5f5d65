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
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from services.kit.errors import PermissionDenied

REQUEST_ID_KEY = "x-request-id"
USER_ID_KEY = "x-meshmart-user-id"
TRACEPARENT_KEY = "traceparent"
# What the callee's sidecar says about the mTLS peer (Envoy's x-forwarded-client-cert;
# Consul's public listener sets APPEND_FORWARD with the peer's URI, its SPIFFE id).
CLIENT_CERT_KEY = "x-forwarded-client-cert"


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
    token = enter_scope(request_id, user_id, traceparent, timeout)
    try:
        yield current_request_id() or ""  # never "": enter_scope made one
    finally:
        _scope.reset(token)


def enter_scope(
    request_id: str | None, user_id: str | None, traceparent: str | None, timeout: float | None
) -> Token[RequestScope | None]:
    """What request_scope() binds, bound until ``leave_scope(token)`` (the interceptor's
    per-RPC path, without a context manager's generator)."""
    return _scope.set(RequestScope(
        request_id=request_id or new_request_id(),
        user_id=user_id,
        traceparent=traceparent,
        deadline=None if timeout is None else time.monotonic() + timeout,
    ))


def leave_scope(token: Token[RequestScope | None]) -> None:
    _scope.reset(token)


def metadata_value(metadata: Any, key: str) -> str | None:
    """First value of ``key`` in gRPC metadata (pairs or grpc.aio.Metadata)."""
    for item_key, value in metadata or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def mesh_caller(client_cert: str | None) -> str | None:
    """The Consul service name of the mTLS peer of this request, from the
    x-forwarded-client-cert header, or None when the request did not come through a
    sidecar's public listener.

    The header may hold several elements (comma-separated); the LAST is the one this
    instance's own sidecar appended for the connection it terminated, the immediate
    peer. Earlier ones are whatever the caller sent and prove nothing. The peer's URI is
    spiffe://<trust domain>/ns/<namespace>/dc/<dc>/svc/<service>.
    """
    if not client_cert:
        return None
    last = _split_unquoted(client_cert, ",")[-1]
    for pair in _split_unquoted(last, ";"):
        key, _, value = pair.partition("=")
        if key.strip().lower() == "uri":
            path = value.strip().strip('"').split("/")
            if len(path) >= 2 and path[-2] == "svc" and path[-1]:
                return path[-1]
    return None


def _split_unquoted(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside double quotes (XFCC quotes Subject, Cert
    and Chain, whose values may hold commas and semicolons)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def asserted_user(
    user_id: str | None, client_cert: str | None, asserters: frozenset[str] | None
) -> str | None:
    """The end user a request acts for: the x-meshmart-user-id it carries, accepted only
    from a caller that may assert one (PERMISSION_DENIED naming the caller otherwise).

    ``asserters`` are the mesh identities allowed to: the edge, which verified the JWT,
    and the services that pass on a request that came from it (topology.toml
    ``asserts_users``). None means no mesh stands in front of this process (run-local,
    the in-process tests): the header is then taken as sent.
    """
    if not user_id or asserters is None:
        return user_id or None
    caller = mesh_caller(client_cert)
    if caller is None:
        raise PermissionDenied(
            "a caller outside the mesh (no client certificate through the sidecar) may not "
            "assert an end user"
        )
    if caller not in asserters:
        raise PermissionDenied(f"caller {caller} may not assert an end user")
    return user_id


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
    """``user_id`` of a user-scoped request (trimmed), checked to be the forwarded
    caller's own (PERMISSION_DENIED otherwise). That it is not empty is the contract's
    rule, which the interceptor checked before the servicer ran."""
    user_id = user_id.strip()
    ensure_caller_may_act_for(context, user_id)
    return user_id
