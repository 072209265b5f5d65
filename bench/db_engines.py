"""PlaceOrder on SQLite vs PostgreSQL, side by side in one run.

    .venv/bin/python -m bench.db_engines [--orders 200] [--rounds 3] [--concurrency 1]

PlaceOrder is the whole saga (user lookup, Reserve, Charge, Commit, confirm, outbox
events) through the in-process shop of harness/shop.py: every service a real gRPC server,
no mesh, so the databases are a visible part of the call. Each round starts two fresh
shops in turn, one with every service on its SQLite file (the default) and one with
every service on its own PostgreSQL database (one database and one role per service, as
tools/postgres.py makes them), and places ``--orders`` orders in each (one user and one
cart line per order, prepared before the clock starts). Rounds alternate which engine
goes first so drift on a shared machine falls on both. Both engines run as they ship:
payment and order commit durably (SQLite synchronous=FULL, PostgreSQL
synchronous_commit=on, with fsync), the others at NORMAL / off.

The PostgreSQL cluster is the benchmark's own: initdb in a temporary directory, postgres
on a free port of 127.0.0.1, stopped (by its pid) at the end.

Prints p50 / p99 / mean latency and orders/s per engine and round, the medians, and
PostgreSQL / SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import tempfile
from pathlib import Path

from bench.placed import Run, medians, place_orders
from harness.host import free_port
from harness.shop import SERVICES, running_shop
from services.kit.logging import configure_logging
from tools.postgres import PostgresCluster

ENGINES = ("sqlite", "postgresql")
_databases = itertools.count(1)


async def one_run(
    engine: str, round_: int, orders: int, concurrency: int, cluster: PostgresCluster
) -> Run:
    urls: dict[str, str] = {}
    made: list[str] = []
    if engine == "postgresql":
        for service in SERVICES:
            name = f"{service}_b{next(_databases)}"
            urls[service] = cluster.service_database(service, name).url
            made.append(name)
    try:
        with tempfile.TemporaryDirectory(prefix=f"engines-{engine}-") as data_dir:
            async with running_shop(Path(data_dir), database_urls=urls) as shop:
                latencies, wall = await place_orders(shop, orders, concurrency)
    finally:
        for name in made:
            cluster.drop_database(name)
    return Run.of(engine, round_, latencies, wall)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200, help="orders per engine and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1, help="PlaceOrder calls in flight")
    args = parser.parse_args()
    configure_logging("bench", level="ERROR")  # not a line per RPC or start of the shop
    directory = Path(tempfile.mkdtemp(prefix="meshmart-bench-pg-"))
    cluster = PostgresCluster(directory, port=free_port(), durable=True)
    runs: list[Run] = []
    try:
        cluster.start()
        for round_ in range(1, args.rounds + 1):
            for engine in ENGINES if round_ % 2 else ENGINES[::-1]:
                run = await one_run(engine, round_, args.orders, args.concurrency, cluster)
                runs.append(run)
                print(run.line(), flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
    summary = medians(runs, ENGINES, args.concurrency)
    pg, lite = summary["postgresql"], summary["sqlite"]
    print(
        f"  PostgreSQL / SQLite: orders/s {pg['orders_per_s'] / lite['orders_per_s']:.2f}x,"
        f" p99 {pg['p99_ms'] / lite['p99_ms']:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
