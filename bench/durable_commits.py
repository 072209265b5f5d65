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
import tempfile
from pathlib import Path

from bench.placed import Run, medians, place_orders
from harness.shop import running_shop
from services.kit.db import Synchronous
from services.kit.logging import configure_logging


async def one_run(mode: Synchronous, round_: int, orders: int, concurrency: int) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"durable-{mode.lower()}-") as data_dir:
        async with running_shop(Path(data_dir), money_synchronous=mode) as shop:
            latencies, wall = await place_orders(shop, orders, concurrency)
    return Run.of(mode, round_, latencies, wall)


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
            print(run.line(), flush=True)
    summary = medians(runs, modes, args.concurrency)
    full, normal = summary["FULL"], summary["NORMAL"]
    print(
        f"  FULL - NORMAL: p50 {full['p50_ms'] - normal['p50_ms']:+.2f} ms"
        f"  mean {full['mean_ms'] - normal['mean_ms']:+.2f} ms;"
        f" FULL / NORMAL orders/s {full['orders_per_s'] / normal['orders_per_s']:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
