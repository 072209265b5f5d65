"""Racing charges with one key where the race is real: separate connections.

Inside one process the event loop runs each Charge's transaction to the end before the
next starts, so the in-process concurrency test cannot interleave them. Two payment
instances share one database (a file, or a PostgreSQL database); these tests give every
racer its own connection (threads) or its own process, which is where the write lock
(BEGIN IMMEDIATE, PostgreSQL's advisory lock) and the UNIQUE key matter. Each runs on
both engines.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from meshmart.payment.v1 import payment_pb2_grpc

from harness.postgres import Databases
from services.kit.db import Database
from services.payment.model import ChargeCommand, Payment, PaymentStatus, new_id
from services.payment.store import MIGRATIONS, PaymentStore
from tests.unit.payment.harness import TODAY, PaymentHarness, charge_request

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_racing_connections_authorize_a_key_exactly_once(databases: Databases) -> None:
    target = databases.target("payment", "payment.sqlite3")
    racers = 12
    connections = [Database(target, MIGRATIONS) for _ in range(racers)]
    start = threading.Barrier(racers)
    authorizations: list[int] = []
    results: list[Payment] = []
    lock = threading.Lock()
    command = ChargeCommand("race-key", "order-1", "user-1", 2590, "EUR")

    def authorize() -> tuple[PaymentStatus, str]:
        with lock:
            authorizations.append(1)
        return PaymentStatus.CAPTURED, ""

    def racer(db: Database) -> None:
        store = PaymentStore(db, new_id)
        start.wait()
        payment = store.record_charge(command, authorize=authorize, card_last4="4242", now=TODAY)
        with lock:
            results.append(payment)

    threads = [threading.Thread(target=racer, args=(db,)) for db in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert len(results) == racers
        assert len(authorizations) == 1
        assert {p.payment_id for p in results} == {results[0].payment_id}
        count = connections[0].read().execute("SELECT count(*) FROM payments").fetchone()[0]
        assert count == 1
    finally:
        for db in connections:
            db.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def second_instance(payment: PaymentHarness) -> Iterator[str]:
    """`python -m services.payment` in its own process, on the harness's database."""
    port = _free_port()
    env = {
        **os.environ,
        "MESHMART_PORT": str(port),
        **payment.databases.env("payment", "payment.sqlite3"),
        "MESHMART_LOG_LEVEL": "WARNING",
        "MESHMART_DRAIN_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.payment"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr.decode(errors="replace")


async def test_two_instances_on_one_database_make_one_payment_per_key(
    payment: PaymentHarness, second_instance: str
) -> None:
    async with grpc.aio.insecure_channel(second_instance) as channel:
        # Start the race only once both instances listen, so they really overlap.
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        other = payment_pb2_grpc.PaymentServiceStub(channel)
        calls = [
            (payment.stub if i % 2 else other).Charge(
                charge_request("two-instance-key"), timeout=10
            )
            for i in range(20)
        ]
        responses = await asyncio.gather(*calls)

    assert {r.payment.payment_id for r in responses} == {responses[0].payment.payment_id}
    assert len(payment.payment_rows()) == 1
