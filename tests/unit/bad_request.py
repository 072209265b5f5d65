"""What an INVALID_ARGUMENT says: the field violations of its google.rpc.BadRequest."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


def violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of the google.rpc.BadRequest sent with an error
    (none when it carries no google.rpc.Status)."""
    status = rpc_status.from_call(error)
    return [] if status is None else _field_violations(status)


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields named by the google.rpc.BadRequest detail of an INVALID_ARGUMENT."""
    status = rpc_status.from_call(error)
    assert status is not None, "INVALID_ARGUMENT without a google.rpc.Status"
    return [field for field, _ in _field_violations(status)]


def _field_violations(status: status_pb2.Status) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found += [(v.field, v.description) for v in bad_request.field_violations]
    return found
