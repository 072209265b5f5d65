"""InventoryService over real gRPC and a real SQLite file, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from meshmart.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from harness.postgres import Databases
from services.catalog.seed import SEED_PRODUCTS
from services.inventory.domain import Line
from services.inventory.seed import OPENING_STOCK
from services.inventory.servicer import InventoryServicer, service_spec
from services.inventory.store import DB_FILE, MIGRATIONS, StockLedger
from services.inventory.sweeper import ExpirySweeper
from services.kit.db import Database
from services.kit.testing import running_server
from tests.unit.bad_request import violated_fields

TIMEOUT = 5.0
START_MS = 1_800_000_000_000
Reservation = inventory_pb2.Reservation


class FakeClock:
    def __init__(self) -> None:
        self.now_ms = START_MS

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


@dataclass
class InventoryApi:
    stub: inventory_pb2_grpc.InventoryServiceAsyncStub
    ledger: StockLedger
    clock: FakeClock
    db: Database

    async def reserve(
        self, order_id: str, lines: Sequence[tuple[str, int]], ttl_seconds: int = 0
    ) -> inventory_pb2.Reservation:
        response = await self.stub.Reserve(
            inventory_pb2.ReserveRequest(
                order_id=order_id,
                lines=[inventory_pb2.ReservationLine(product_id=p, quantity=q) for p, q in lines],
                ttl_seconds=ttl_seconds,
            ),
            timeout=TIMEOUT,
        )
        reservation: inventory_pb2.Reservation = response.reservation
        return reservation

    async def commit(self, order_id: str) -> inventory_pb2.Reservation:
        response = await self.stub.Commit(
            inventory_pb2.CommitRequest(order_id=order_id), timeout=TIMEOUT
        )
        reservation: inventory_pb2.Reservation = response.reservation
        return reservation

    async def release(self, order_id: str) -> inventory_pb2.Reservation:
        response = await self.stub.Release(
            inventory_pb2.ReleaseRequest(order_id=order_id), timeout=TIMEOUT
        )
        reservation: inventory_pb2.Reservation = response.reservation
        return reservation

    async def stock(self, product_id: str) -> tuple[int, int]:
        """(available, reserved) of one product."""
        response = await self.stub.GetStock(
            inventory_pb2.GetStockRequest(product_ids=[product_id]), timeout=TIMEOUT
        )
        [level] = response.items
        return level.available, level.reserved


@pytest.fixture
async def api(databases: Databases) -> AsyncIterator[InventoryApi]:
    """Over gRPC, on SQLite and again on PostgreSQL."""
    db = Database(databases.target("inventory", DB_FILE), MIGRATIONS)
    clock = FakeClock()
    ledger = StockLedger(db, clock_ms=clock)
    ledger.seed({"sku-1001": 10, "sku-1002": 5, "sku-1003": 1})
    try:
        async with (
            running_server([service_spec(InventoryServicer(ledger))]) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            stub = cast(
                "inventory_pb2_grpc.InventoryServiceAsyncStub",
                inventory_pb2_grpc.InventoryServiceStub(channel),
            )
            yield InventoryApi(stub, ledger, clock, db)
    finally:
        db.close()


def test_opening_stock_covers_exactly_the_catalog_seed() -> None:
    assert set(OPENING_STOCK) == {p.product_id for p in SEED_PRODUCTS}
    assert all(quantity > 0 for quantity in OPENING_STOCK.values())


def test_seeding_is_idempotent_and_keeps_existing_counts(databases: Databases) -> None:
    db = Database(databases.target("inventory", DB_FILE), MIGRATIONS)
    ledger = StockLedger(db)
    assert ledger.seed(OPENING_STOCK) == len(OPENING_STOCK)
    ledger.reserve("order-1", [Line("sku-1001", 1)], 60)
    assert ledger.seed(OPENING_STOCK) == 0
    [level] = ledger.get_stock(["sku-1001"])
    assert (level.available, level.reserved) == (OPENING_STOCK["sku-1001"] - 1, 1)
    db.close()


async def test_reserve_holds_stock_until_the_deadline(api: InventoryApi) -> None:
    reservation = await api.reserve("order-1", [("sku-1001", 3), ("sku-1002", 2)], ttl_seconds=60)

    assert reservation.order_id == "order-1"
    assert reservation.state == Reservation.STATE_RESERVED
    assert reservation.expires_at.ToMilliseconds() == START_MS + 60_000
    assert [(ln.product_id, ln.quantity) for ln in reservation.lines] == [
        ("sku-1001", 3),
        ("sku-1002", 2),
    ]
    assert await api.stock("sku-1001") == (7, 3)
    assert await api.stock("sku-1002") == (3, 2)


async def test_default_ttl_is_300_seconds(api: InventoryApi) -> None:
    reservation = await api.reserve("order-1", [("sku-1001", 1)])
    assert reservation.expires_at.ToMilliseconds() == START_MS + 300_000


async def test_reserve_is_idempotent_per_order_id(api: InventoryApi) -> None:
    first = await api.reserve("order-1", [("sku-1001", 3)])
    api.clock.advance(1)
    again = await api.reserve("order-1", [("sku-1001", 3)])
    different_lines = await api.reserve("order-1", [("sku-1002", 1)])

    assert again == first
    assert different_lines == first  # the existing reservation, whatever the lines
    assert await api.stock("sku-1001") == (7, 3)
    assert await api.stock("sku-1002") == (5, 0)


async def test_commit_sells_the_stock_and_is_idempotent(api: InventoryApi) -> None:
    await api.reserve("order-1", [("sku-1001", 4)])

    committed = await api.commit("order-1")
    assert committed.state == Reservation.STATE_COMMITTED
    assert await api.stock("sku-1001") == (6, 0)  # sold: not reserved, not available

    assert await api.commit("order-1") == committed
    assert await api.stock("sku-1001") == (6, 0)


async def test_release_returns_the_stock_and_is_idempotent(api: InventoryApi) -> None:
    await api.reserve("order-1", [("sku-1001", 4)])

    released = await api.release("order-1")
    assert released.state == Reservation.STATE_RELEASED
    assert await api.stock("sku-1001") == (10, 0)

    assert await api.release("order-1") == released
    assert await api.stock("sku-1001") == (10, 0)


async def test_commit_of_a_released_reservation_is_failed_precondition(
    api: InventoryApi,
) -> None:
    await api.reserve("order-1", [("sku-1001", 4)])
    await api.release("order-1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.commit("order-1")
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "RELEASED" in (caught.value.details() or "")
    assert await api.stock("sku-1001") == (10, 0)


async def test_release_of_a_committed_reservation_is_failed_precondition(
    api: InventoryApi,
) -> None:
    await api.reserve("order-1", [("sku-1001", 4)])
    await api.commit("order-1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.release("order-1")
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert await api.stock("sku-1001") == (6, 0)


@pytest.mark.parametrize("operation", ["commit", "release"])
async def test_unknown_order_is_not_found(api: InventoryApi, operation: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(api, operation)("order-missing")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert "order-missing" in (caught.value.details() or "")


async def test_not_enough_stock_reserves_nothing_and_names_the_product(
    api: InventoryApi,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.reserve("order-1", [("sku-1001", 2), ("sku-1003", 2)])

    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "sku-1003" in (caught.value.details() or "")
    assert "sku-1001" not in (caught.value.details() or "")
    status = rpc_status.from_call(caught.value)
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert [(v.type, v.subject) for v in failure.violations] == [("STOCK", "sku-1003")]
    # All or nothing: the line that fitted was not held either, and no reservation exists.
    assert await api.stock("sku-1001") == (10, 0)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await api.commit("order-1")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_unknown_product_is_not_found_and_reserves_nothing(api: InventoryApi) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.reserve("order-1", [("sku-1001", 1), ("sku-0000", 1)])
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert "sku-0000" in (caught.value.details() or "")
    assert await api.stock("sku-1001") == (10, 0)


async def test_expired_reservation_returns_its_stock(api: InventoryApi) -> None:
    await api.reserve("order-1", [("sku-1001", 4)], ttl_seconds=60)
    api.clock.advance(59)
    assert await api.stock("sku-1001") == (6, 4)

    api.clock.advance(1)  # at the deadline
    assert await api.stock("sku-1001") == (10, 0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.commit("order-1")
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "EXPIRED" in (caught.value.details() or "")
    # Releasing an expired reservation is a harmless repeat: the stock is already back.
    released = await api.release("order-1")
    assert released.state == Reservation.STATE_EXPIRED
    assert await api.stock("sku-1001") == (10, 0)


async def test_expired_stock_can_be_reserved_by_another_order(api: InventoryApi) -> None:
    await api.reserve("order-1", [("sku-1003", 1)], ttl_seconds=30)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.reserve("order-2", [("sku-1003", 1)])
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION

    api.clock.advance(31)
    second = await api.reserve("order-2", [("sku-1003", 1)])
    assert second.state == Reservation.STATE_RESERVED
    assert (await api.reserve("order-1", [("sku-1003", 1)])).state == Reservation.STATE_EXPIRED


async def test_sweeper_expires_due_reservations_without_any_rpc(api: InventoryApi) -> None:
    await api.reserve("order-1", [("sku-1001", 4)], ttl_seconds=10)
    await api.reserve("order-2", [("sku-1002", 1)], ttl_seconds=100)
    sweeper = ExpirySweeper(api.ledger, interval_seconds=3600)
    assert await sweeper.sweep_once() == 0

    api.clock.advance(10)
    assert await sweeper.sweep_once() == 1
    rows = api.db.read().execute("SELECT order_id, state FROM reservations ORDER BY order_id")
    assert [tuple(r) for r in rows] == [("order-1", "EXPIRED"), ("order-2", "RESERVED")]
    stock = api.db.read().execute("SELECT reserved FROM stock WHERE product_id = 'sku-1001'")
    assert stock.fetchone()[0] == 0

    await sweeper.start()
    await sweeper.stop()  # the task is cancelled and awaited cleanly


async def test_get_stock_keeps_request_order_and_zeroes_unknown_products(
    api: InventoryApi,
) -> None:
    response = await api.stub.GetStock(
        inventory_pb2.GetStockRequest(product_ids=["sku-1003", "sku-9999", "sku-1001"]),
        timeout=TIMEOUT,
    )
    assert [(i.product_id, i.available, i.reserved) for i in response.items] == [
        ("sku-1003", 1, 0),
        ("sku-9999", 0, 0),
        ("sku-1001", 10, 0),
    ]


@pytest.mark.parametrize(
    ("order_id", "lines", "ttl_seconds", "field"),
    [
        ("", [("sku-1001", 1)], 0, "order_id"),
        ("order-1", [], 0, "lines"),
        ("order-1", [("sku-1001", 0)], 0, "lines[0].quantity"),
        ("order-1", [("sku-1001", 100)], 0, "lines[0].quantity"),
        ("order-1", [("sku-1001", 1), ("", 1)], 0, "lines[1].product_id"),
        ("order-1", [("sku-1001", 1), ("sku-1001", 2)], 0, "lines[1].product_id"),
        ("order-1", [("sku-1001", 1)], 3601, "ttl_seconds"),
        ("order-1", [("sku-1001", 1)], -1, "ttl_seconds"),
    ],
)
async def test_reserve_validates_each_field(
    api: InventoryApi,
    order_id: str,
    lines: list[tuple[str, int]],
    ttl_seconds: int,
    field: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.reserve(order_id, lines, ttl_seconds)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
    assert await api.stock("sku-1001") == (10, 0)


@pytest.mark.parametrize(
    ("product_ids", "field"),
    [([], "product_ids"), (["sku-1001", ""], "product_ids[1]"), (["x"] * 101, "product_ids")],
)
async def test_get_stock_validates_product_ids(
    api: InventoryApi, product_ids: list[str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.stub.GetStock(
            inventory_pb2.GetStockRequest(product_ids=product_ids), timeout=TIMEOUT
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
