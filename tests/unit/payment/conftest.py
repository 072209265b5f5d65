"""A real payment server in-process, on a real SQLite file in tmp_path, or on a
PostgreSQL database of the session cluster (harness/postgres.py)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from typing import cast

import grpc
import pytest
from meshmart.payment.v1 import payment_pb2_grpc

from harness.postgres import Databases
from services.kit.db import Database
from services.kit.testing import running_server
from services.payment.domain import PaymentProcessor, authorize
from services.payment.faults import Fault, FaultInjector
from services.payment.model import new_id
from services.payment.servicer import service_specs
from services.payment.store import MIGRATIONS, PaymentStore
from tests.unit.payment.harness import PaymentHarness, TickingClock


@pytest.fixture
def db(databases: Databases) -> Iterator[Database]:
    """Payment's database, on SQLite and again on PostgreSQL: every payment test runs
    on both."""
    database = Database(databases.target("payment", "payment.sqlite3"), MIGRATIONS)
    yield database
    database.close()


@pytest.fixture
async def payment(db: Database, databases: Databases) -> AsyncIterator[PaymentHarness]:
    processor = PaymentProcessor(PaymentStore(db, new_id), authorize, TickingClock())
    # Seeded so the fault tests see one reproducible sequence of draws.
    faults = FaultInjector(Fault(), rng=random.Random(7))
    async with (
        running_server(service_specs(processor, faults)) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        yield PaymentHarness(
            stub=cast(
                "payment_pb2_grpc.PaymentServiceAsyncStub",
                payment_pb2_grpc.PaymentServiceStub(channel),
            ),
            admin=cast(
                "payment_pb2_grpc.PaymentAdminServiceAsyncStub",
                payment_pb2_grpc.PaymentAdminServiceStub(channel),
            ),
            db=db,
            databases=databases,
            faults=faults,
        )
