"""InventoryService over gRPC: validate, call the StockLedger, map to protobuf."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2
from meshmart.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from services.inventory.domain import (
    DEFAULT_TTL_SECONDS,
    Line,
    Reservation,
    ReservationState,
)
from services.inventory.store import StockLedger
from services.kit import validate
from services.kit.server import ServiceSpec

SERVICE_NAME = "meshmart.inventory.v1.InventoryService"


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
    # Each line's own rules are the contract's; a product listed twice is a rule between
    # lines, so it stays here.
    lines: list[Line] = []
    seen: set[str] = set()
    for index, line in enumerate(request.lines):
        field = f"lines[{index}]"
        product_id = line.product_id
        validate.require(
            product_id not in seen,
            f"{field}.product_id",
            f"duplicate product {product_id}; list each product once",
        )
        seen.add(product_id)
        lines.append(Line(product_id, line.quantity))
    return lines


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, ledger: StockLedger) -> None:
        self._ledger = ledger

    async def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: Any
    ) -> inventory_pb2.GetStockResponse:
        levels = await self._ledger.db.run(self._ledger.get_stock, list(request.product_ids))
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
        lines = _lines(request)
        ttl = request.ttl_seconds or DEFAULT_TTL_SECONDS
        reservation = await self._ledger.db.run(self._ledger.reserve, request.order_id, lines, ttl)
        return inventory_pb2.ReserveResponse(reservation=reservation_message(reservation))

    async def Release(
        self, request: inventory_pb2.ReleaseRequest, context: Any
    ) -> inventory_pb2.ReleaseResponse:
        reservation = await self._ledger.db.run(self._ledger.release, request.order_id)
        return inventory_pb2.ReleaseResponse(reservation=reservation_message(reservation))

    async def Commit(
        self, request: inventory_pb2.CommitRequest, context: Any
    ) -> inventory_pb2.CommitResponse:
        reservation = await self._ledger.db.run(self._ledger.commit, request.order_id)
        return inventory_pb2.CommitResponse(reservation=reservation_message(reservation))


def service_spec(servicer: InventoryServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
            servicer, server
        ),
    )
