"""Nothing blocks a service's event loop: PlaceOrder under load on the real mesh, with
slow-callback detection on in every service process (the session mesh sets
MESHMART_LOOP_SLOW_CALLBACK_MS=20, tests/conftest.py; services/kit/loop_watch.py), and
not one callback logged as blocking a loop for longer while the orders ran.

A correctness check, not a speed goal: a callback that blocks (a SQLite commit's fsync,
a BEGIN IMMEDIATE waiting for the other instance's lock, Argon2 on the loop) stops every
RPC of that process for as long. "Blocks" is the time the loop's thread slept inside
the callback; asyncio's own wall-clock warnings (logged too) also count the time it
waited for a core, which on a loaded machine says nothing about the code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2
from meshmart.user.v1 import user_pb2_grpc

from harness.callers import as_edge
from harness.shop import register_user
from tools.mesh.plan import MeshPlan

pytestmark = pytest.mark.mesh

CUSTOMERS = 12
ORDERS_EACH = 3
TIMEOUT = 30.0
CARD = payment_pb2.Card(number="4242424242424242", exp_month=12, exp_year=2099, cvc="123")
ADDRESS = order_pb2.Address(
    name="Ada Lovelace", line1="12 Analytical Row", city="London", postal_code="N1", country="GB"
)


def log_lines(logs_dir: Path, since: str, marker: str) -> Iterator[dict[str, Any]]:
    """The JSON lines containing ``marker`` that the services logged at or after ``since``."""
    for log in sorted(logs_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if marker not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if str(entry.get("timestamp", "")) >= since:
                yield {"log": log.name, **entry}


async def test_place_order_under_load_never_blocks_an_event_loop(mesh: MeshPlan) -> None:
    # As the edge forwards shoppers' calls (its sidecar's listeners: harness/callers.py).
    channels = [as_edge(mesh, name) for name in ("user", "cart", "order")]
    users = user_pb2_grpc.UserServiceStub(channels[0])
    carts = cart_pb2_grpc.CartServiceStub(channels[1])
    orders = order_pb2_grpc.OrderServiceStub(channels[2])

    async def customer() -> str:
        return (await register_user(users, timeout_seconds=TIMEOUT)).user_id

    async def shop(user_id: str) -> list[order_pb2.Order]:
        placed = []
        for _ in range(ORDERS_EACH):
            await carts.AddItem(
                cart_pb2.AddItemRequest(user_id=user_id, product_id="sku-1001", quantity=1),
                timeout=TIMEOUT,
            )
            response = await orders.PlaceOrder(
                order_pb2.PlaceOrderRequest(
                    user_id=user_id,
                    idempotency_key=uuid.uuid4().hex,
                    card=CARD,
                    shipping_address=ADDRESS,
                ),
                timeout=TIMEOUT,
            )
            placed.append(response.order)
        return placed

    try:
        # Sign-ups (Argon2) before the timed window: they are not what this test loads.
        user_ids = await asyncio.gather(*(customer() for _ in range(CUSTOMERS)))
        since = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        results = await asyncio.gather(*(shop(user_id) for user_id in user_ids))
    finally:
        for ch in channels:
            await ch.close()

    placed = [order for per_customer in results for order in per_customer]
    assert len(placed) == CUSTOMERS * ORDERS_EACH
    settled = {order_pb2.Order.STATE_CONFIRMED, order_pb2.Order.STATE_CANCELLED}
    assert all(order.state in settled for order in placed)
    blocked = list(log_lines(mesh.logs_dir, since, "loop.blocked"))
    slow = [e for e in log_lines(mesh.logs_dir, since, '"asyncio"') if "took" in e["event"]]
    assert not blocked, (
        f"callbacks blocked an event loop over 20 ms ({len(slow)} took longer by the wall"
        " clock, waiting for a core included):\n"
        + "\n".join(
            f"{b['log']}: blocked {b['blocked_ms']} ms (cpu {b['cpu_ms']}, waiting for a core"
            f" {b['runqueue_ms']}, busiest other thread {b['other_thread_ms']}): {b['callback']}"
            for b in blocked[:20]
        )
    )
