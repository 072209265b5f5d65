"""Domain exceptions: what went wrong, in the domain's words.

Servicers and domain code raise these; the kit's server interceptor turns each into its
gRPC status code (see interceptors.py), so no servicer calls ``context.abort`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import grpc
from google.protobuf.message import Message


class DomainError(Exception):
    """Base of every error a client is meant to see; ``code`` is its gRPC status."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, details: Sequence[Message] = ()) -> None:
        super().__init__(message)
        self.message = message
        # Extra google.rpc detail messages (e.g. ErrorInfo, RetryInfo) sent in the status.
        self.details: tuple[Message, ...] = tuple(details)


class InvalidArgument(DomainError):
    """The request is malformed; ``violations`` name each offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, description: str, *, details: Sequence[Message] = ()) -> None:
        super().__init__(f"{field}: {description}", details=details)
        self.field = field
        self.description = description
        self.violations: tuple[tuple[str, str], ...] = ((field, description),)

    @classmethod
    def of(cls, violations: Sequence[tuple[str, str]]) -> InvalidArgument:
        """One error carrying several (field, description) violations."""
        if not violations:
            raise ValueError("InvalidArgument.of needs at least one violation")
        first_field, first_description = violations[0]
        error = cls(first_field, first_description)
        error.violations = tuple(violations)
        error.message = "; ".join(f"{f}: {d}" for f, d in violations)
        error.args = (error.message,)
        return error


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The system is not in a state where the operation can run (e.g. out of stock)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(DomainError):
    """A concurrency conflict (e.g. an idempotency key reused with a different request)."""

    code = grpc.StatusCode.ABORTED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(DomainError):
    """A dependency is down; callers (or the sidecar) may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
