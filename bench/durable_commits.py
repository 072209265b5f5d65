"""What ``synchronous=FULL`` on payment's and order's SQLite costs PlaceOrder, side by side.

    .venv/bin/python bench/durable_commits.py [--orders 200] [--rounds 3] [--concurrency 1]

PlaceOrder is the whole saga (user lookup, Reserve, Charge, Commit, confirm, outbox
events) through the in-process shop of harness/shop.py: every service a real gRPC
server on its own SQLite file, no mesh, so the commits are a visible part of the call.
Each round starts two fresh shops in turn, one with payment and order at NORMAL (fsync at
checkpoints only) and one at FULL (an fsync of the WAL per commit, what they ship with,
services/*/store.py SYNCHRONOUS), and places ``--orders`` orders in each (one user and one
cart line per order, prepared before the clock starts). Rounds alternate which goes first
so drift on a shared machine falls on both. The other services stay at NORMAL in both.

Prints p50 / p99 / mean latency and orders/s per mode and round, and FULL / NORMAL.
The data lives under a temporary directory on the filesystem tempfile picks: run it
where the services' data would live if that is a different disk.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from meshmart.order.v1 import order_pb2

from harness.shop import Shop, running_shop
from services.kit.db import Synchronous
from services.kit.logging import configure_logging

# Products with the most opening stock (services/inventory/seed.py), as in place_order.py.
PRODUCTS = ("sku-1009", "sku-1023", "sku-1026", "sku-1028", "sku-1029", "sku-1041")


@dataclass(frozen=True)
class Run:
    mode: Synchronous
    round: int
    orders: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    orders_per_s: float


async def place_orders(shop: Shop, orders: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of ``orders`` PlaceOrder calls, ``concurrency`` at a time, and the wall
    time of the whole batch."""
    users = []
    for n in range(orders):
        user = await shop.register()
        await shop.add_to_cart(user.user_id, PRODUCTS[n % len(PRODUCTS)])
        users.append(user.user_id)
    latencies: list[float] = []
    queue = iter(enumerate(users))

    async def worker() -> None:
        for n, user_id in queue:
            started = time.perf_counter()
            order = await shop.place_order(user_id, f"bench-{n}")
            latencies.append(time.perf_counter() - started)
            if order.state != order_pb2.Order.STATE_CONFIRMED:
                raise RuntimeError(f"order {n} ended {order_pb2.Order.State.Name(order.state)}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def one_run(mode: Synchronous, round_: int, orders: int, concurrency: int) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"durable-{mode.lower()}-") as data_dir:
        async with running_shop(Path(data_dir), money_synchronous=mode) as shop:
            latencies, wall = await place_orders(shop, orders, concurrency)
    ms = sorted(1000 * s for s in latencies)
    return Run(
        mode=mode,
        round=round_,
        orders=len(ms),
        p50_ms=ms[len(ms) // 2],
        p99_ms=ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        mean_ms=statistics.fmean(ms),
        orders_per_s=len(ms) / wall,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200, help="orders per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1, help="PlaceOrder calls in flight")
    args = parser.parse_args()
    configure_logging("bench", level="ERROR")  # not a line per RPC or start of the shop
    runs: list[Run] = []
    modes: tuple[Synchronous, Synchronous] = ("NORMAL", "FULL")
    for round_ in range(1, args.rounds + 1):
        order = modes if round_ % 2 else modes[::-1]
        for mode in order:
            run = await one_run(mode, round_, args.orders, args.concurrency)
            runs.append(run)
            print(
                f"round {run.round} {run.mode:<6} {run.orders} orders  p50 {run.p50_ms:6.2f} ms"
                f"  p99 {run.p99_ms:6.2f} ms  mean {run.mean_ms:6.2f} ms"
                f"  {run.orders_per_s:6.1f} orders/s",
                flush=True,
            )
    print(f"\nconcurrency {args.concurrency}, median over {args.rounds} rounds:")
    summary = {
        mode: {
            field: statistics.median(getattr(r, field) for r in runs if r.mode == mode)
            for field in ("p50_ms", "p99_ms", "mean_ms", "orders_per_s")
        }
        for mode in modes
    }
    for mode in modes:
        s = summary[mode]
        print(
            f"  {mode:<6} p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms"
            f"  mean {s['mean_ms']:6.2f} ms  {s['orders_per_s']:6.1f} orders/s"
        )
    full, normal = summary["FULL"], summary["NORMAL"]
    print(
        f"  FULL - NORMAL: p50 {full['p50_ms'] - normal['p50_ms']:+.2f} ms"
        f"  mean {full['mean_ms'] - normal['mean_ms']:+.2f} ms;"
        f" FULL / NORMAL orders/s {full['orders_per_s'] / normal['orders_per_s']:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
