"""The overselling race: many concurrent Reserve calls for the last units of a product.

Calls go over real gRPC, from several client channels, first against one in-process
server and then against two server processes (`python -m services.inventory`) sharing
one database, which is how two instances of the service would run: one SQLite file, and
again one PostgreSQL database. Whatever the interleaving, exactly the available units
are reserved and none is oversold.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshmart.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from harness.host import free_port
from harness.postgres import Databases
from services.inventory.servicer import InventoryServicer, service_spec
from services.inventory.store import DB_FILE, MIGRATIONS, StockLedger
from services.kit.db import Database
from services.kit.testing import running_server

REPO_ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 20.0
CONCURRENT_ORDERS = 50
LAST_UNITS = 7

if TYPE_CHECKING:  # the async stub class exists only in the type stubs
    Stub = inventory_pb2_grpc.InventoryServiceAsyncStub


def reserve_request(
    order_id: str, lines: Sequence[tuple[str, int]]
) -> inventory_pb2.ReserveRequest:
    return inventory_pb2.ReserveRequest(
        order_id=order_id,
        lines=[inventory_pb2.ReservationLine(product_id=p, quantity=q) for p, q in lines],
    )


async def reserve_all(
    stubs: Sequence[Stub], requests: Sequence[inventory_pb2.ReserveRequest]
) -> Counter[grpc.StatusCode]:
    """Fire every request at once, round-robin over ``stubs``; count the outcomes."""

    async def one(index: int, request: inventory_pb2.ReserveRequest) -> grpc.StatusCode:
        try:
            await stubs[index % len(stubs)].Reserve(request, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as error:
            return cast(grpc.StatusCode, error.code())
        return grpc.StatusCode.OK

    outcomes = await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
    return Counter(outcomes)


def held_units(target: Path | str, product_id: str) -> tuple[int, int, int]:
    """(on_hand, reserved, units in RESERVED reservations) read straight from the database."""
    db = Database(target, MIGRATIONS)
    try:
        on_hand, reserved = (
            db.read()
            .execute("SELECT on_hand, reserved FROM stock WHERE product_id = ?", (product_id,))
            .fetchone()
        )
        [in_reservations] = (
            db.read()
            .execute(
                "SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines AS l"
                " JOIN reservations AS r ON r.order_id = l.order_id"
                " WHERE r.state = 'RESERVED' AND l.product_id = ?",
                (product_id,),
            )
            .fetchone()
        )
        return on_hand, reserved, in_reservations
    finally:
        db.close()


def prepare_stock(target: Path | str, stock: dict[str, int]) -> None:
    db = Database(target, MIGRATIONS)
    StockLedger(db).seed(stock)
    db.close()


def stub_for(channel: grpc.aio.Channel) -> Stub:
    return cast("Stub", inventory_pb2_grpc.InventoryServiceStub(channel))


async def test_concurrent_reserves_in_one_process_never_oversell(databases: Databases) -> None:
    db_path = databases.target("inventory", DB_FILE)
    prepare_stock(db_path, {"sku-race": LAST_UNITS})
    db = Database(db_path, MIGRATIONS)
    try:
        async with running_server([service_spec(InventoryServicer(StockLedger(db)))]) as target:
            channels = [grpc.aio.insecure_channel(target) for _ in range(5)]
            try:
                outcomes = await reserve_all(
                    [stub_for(c) for c in channels],
                    [
                        reserve_request(f"order-{n}", [("sku-race", 1)])
                        for n in range(CONCURRENT_ORDERS)
                    ],
                )
            finally:
                await asyncio.gather(*(c.close() for c in channels))
    finally:
        db.close()

    assert outcomes == {
        grpc.StatusCode.OK: LAST_UNITS,
        grpc.StatusCode.FAILED_PRECONDITION: CONCURRENT_ORDERS - LAST_UNITS,
    }
    assert held_units(db_path, "sku-race") == (LAST_UNITS, LAST_UNITS, LAST_UNITS)


@pytest.fixture
async def two_instances(tmp_path: Path, databases: Databases) -> AsyncIterator[list[str]]:
    """Two `python -m services.inventory` processes on one database; yields their targets."""
    processes: list[asyncio.subprocess.Process] = []
    targets: list[str] = []
    try:
        for number in (1, 2):
            port = free_port()
            env = {
                **os.environ,
                "MESHMART_PORT": str(port),
                "MESHMART_INSTANCE_ID": f"inventory-{number}",
                **databases.env("inventory", DB_FILE),
                "MESHMART_RUN_DIR": str(tmp_path),
                "MESHMART_DRAIN_SECONDS": "0",
                "MESHMART_LOG_LEVEL": "WARNING",
            }
            log = (tmp_path / f"inventory-{number}.log").open("wb")
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "services.inventory",
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
            log.close()
            targets.append(f"127.0.0.1:{port}")
        for target in targets:
            async with grpc.aio.insecure_channel(target) as channel:
                # wait_for_ready: the call waits for the server to listen (no sleep loop).
                health = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=TIMEOUT, wait_for_ready=True
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING
        yield targets
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_two_processes_on_one_database_never_oversell(
    databases: Databases, two_instances: list[str]
) -> None:
    target = databases.target("inventory", DB_FILE)
    # The instances seeded the opening stock at start; these products are the test's own.
    prepare_stock(target, {"sku-race": LAST_UNITS, "sku-a": 30, "sku-b": 15})
    channels = [grpc.aio.insecure_channel(t) for t in two_instances for _ in range(3)]
    stubs = [stub_for(c) for c in channels]
    try:
        single = await reserve_all(
            stubs,
            [reserve_request(f"single-{n}", [("sku-race", 1)]) for n in range(CONCURRENT_ORDERS)],
        )
        # Two lines per order: sku-b (15 units, 2 per order) runs out after 7 orders, and
        # all-or-nothing means sku-a is held for exactly those 7 orders as well.
        pairs = await reserve_all(
            stubs,
            [
                reserve_request(f"pair-{n}", [("sku-a", 1), ("sku-b", 2)])
                for n in range(CONCURRENT_ORDERS)
            ],
        )
        # The same order from every channel at once: Reserve is idempotent per order_id.
        repeats = await reserve_all(
            stubs, [reserve_request("same-order", [("sku-a", 5)]) for _ in range(20)]
        )
    finally:
        await asyncio.gather(*(c.close() for c in channels))

    assert single == {
        grpc.StatusCode.OK: LAST_UNITS,
        grpc.StatusCode.FAILED_PRECONDITION: CONCURRENT_ORDERS - LAST_UNITS,
    }
    assert held_units(target, "sku-race") == (LAST_UNITS, LAST_UNITS, LAST_UNITS)
    assert pairs == {
        grpc.StatusCode.OK: 7,
        grpc.StatusCode.FAILED_PRECONDITION: CONCURRENT_ORDERS - 7,
    }
    assert held_units(target, "sku-b") == (15, 14, 14)
    assert repeats == {grpc.StatusCode.OK: 20}
    assert held_units(target, "sku-a") == (30, 7 + 5, 7 + 5)
