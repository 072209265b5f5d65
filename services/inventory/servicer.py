"""InventoryService over gRPC: validate, call the StockLedger, map to protobuf."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2
from meshmart.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from services.inventory.domain import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    Line,
    Reservation,
    ReservationState,
)
from services.inventory.store import StockLedger
from services.kit import validate
from services.kit.server import ServiceSpec

SERVICE_NAME = "meshmart.inventory.v1.InventoryService"

MAX_LINES = 100
MAX_QUANTITY = 99
MAX_PRODUCT_IDS = 100

_STATES = {
    ReservationState.RESERVED: inventory_pb2.Reservation.STATE_RESERVED,
    ReservationState.COMMITTED: inventory_pb2.Reservation.STATE_COMMITTED,
    ReservationState.RELEASED: inventory_pb2.Reservation.STATE_RELEASED,
    ReservationState.EXPIRED: inventory_pb2.Reservation.STATE_EXPIRED,
}


def reservation_message(reservation: Reservation) -> inventory_pb2.Reservation:
    expires_at = timestamp_pb2.Timestamp()
    expires_at.FromMilliseconds(reservation.expires_at_ms)
    return inventory_pb2.Reservation(
        order_id=reservation.order_id,
        state=_STATES[reservation.state],
        expires_at=expires_at,
        lines=[
            inventory_pb2.ReservationLine(product_id=line.product_id, quantity=line.quantity)
            for line in reservation.lines
        ],
    )


def _lines(request: inventory_pb2.ReserveRequest) -> list[Line]:
    validate.non_empty_list(request.lines, "lines")
    validate.max_length(request.lines, MAX_LINES, "lines")
    lines: list[Line] = []
    seen: set[str] = set()
    for index, line in enumerate(request.lines):
        field = f"lines[{index}]"
        product_id = validate.identifier(line.product_id, f"{field}.product_id")
        validate.require(
            product_id not in seen,
            f"{field}.product_id",
            f"duplicate product {product_id}; list each product once",
        )
        seen.add(product_id)
        quantity = validate.in_range(line.quantity, 1, MAX_QUANTITY, f"{field}.quantity")
        lines.append(Line(product_id, quantity))
    return lines


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, ledger: StockLedger) -> None:
        self._ledger = ledger

    async def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: Any
    ) -> inventory_pb2.GetStockResponse:
        validate.non_empty_list(request.product_ids, "product_ids")
        validate.max_length(request.product_ids, MAX_PRODUCT_IDS, "product_ids")
        product_ids = [
            validate.identifier(pid, f"product_ids[{i}]")
            for i, pid in enumerate(request.product_ids)
        ]
        levels = self._ledger.get_stock(product_ids)
        return inventory_pb2.GetStockResponse(
            items=[
                inventory_pb2.StockLevel(
                    product_id=level.product_id, available=level.available, reserved=level.reserved
                )
                for level in levels
            ]
        )

    async def Reserve(
        self, request: inventory_pb2.ReserveRequest, context: Any
    ) -> inventory_pb2.ReserveResponse:
        order_id = validate.identifier(request.order_id, "order_id")
        lines = _lines(request)
        ttl = validate.in_range(request.ttl_seconds, 0, MAX_TTL_SECONDS, "ttl_seconds")
        reservation = self._ledger.reserve(order_id, lines, ttl or DEFAULT_TTL_SECONDS)
        return inventory_pb2.ReserveResponse(reservation=reservation_message(reservation))

    async def Release(
        self, request: inventory_pb2.ReleaseRequest, context: Any
    ) -> inventory_pb2.ReleaseResponse:
        order_id = validate.identifier(request.order_id, "order_id")
        reservation = self._ledger.release(order_id)
        return inventory_pb2.ReleaseResponse(reservation=reservation_message(reservation))

    async def Commit(
        self, request: inventory_pb2.CommitRequest, context: Any
    ) -> inventory_pb2.CommitResponse:
        order_id = validate.identifier(request.order_id, "order_id")
        reservation = self._ledger.commit(order_id)
        return inventory_pb2.CommitResponse(reservation=reservation_message(reservation))


def service_spec(servicer: InventoryServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
            servicer, server
        ),
    )
