"""Rebuild the analytics read model from the streams, from scratch, and compare it.

    python -m services.analytics.rebuild [--out FILE] [--replace]
    (make replay-analytics)

Reads every OrderConfirmed (ORDERS) and PaymentRefunded (PAYMENTS) from the first
message, applies them with the live consumer's own handlers into a new SQLite file
(with the processed event ids, so the file can take over from the incremental one),
then compares the whole sales report and the popular products with the live read
model, wherever analytics keeps it: the database at MESHMART_DATABASE_URL when that is
set (a mesh on PostgreSQL: `python -m tools.postgres url analytics` prints it for the
server's own address), else its SQLite file in MESHMART_DATA_DIR. Exit 0 when they are
equal, 1 when they differ.

--replace moves the rebuilt file over the live one: only with the analytics service
stopped (its durable consumer continues after the last event either file has seen, and
events it applies twice are recognised by their ids), and only for a live read model in
a SQLite file (a PostgreSQL database is no file to move: it is refused).

Settings: MESHMART_NATS_URL (required), MESHMART_DATABASE_URL (optional),
MESHMART_DATA_DIR (default .run/data).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import nats
from meshmart.common.v1.common_pb2 import EventEnvelope

from services.analytics.projection import CONSUMER_NAME, EVENT_TYPES, handlers
from services.analytics.store import DB_FILE, MIGRATIONS, SalesReadModel, SalesReport
from services.kit.config import ConfigError, env_str, read_database_url
from services.kit.db import Database
from services.kit.events import Handler, apply_once, read_stream, stream_for


async def rebuild(url: str, out: Path) -> int:
    """Replay the streams into a fresh database at ``out``; returns the events applied."""
    for stale in (out, out.with_name(out.name + "-wal"), out.with_name(out.name + "-shm")):
        stale.unlink(missing_ok=True)
    db = Database(out, MIGRATIONS)
    nc = await nats.connect(url, name="analytics-rebuild")
    applied = 0
    try:
        js = nc.jetstream()
        table = handlers()
        streams = sorted({stream_for(t) for t in EVENT_TYPES}, key=lambda s: s.name)
        for stream in streams:
            types = [t for t in EVENT_TYPES if stream_for(t) == stream]
            # One transaction per stream: a rebuild is all or nothing per stream.
            events = [(seq, envelope) async for seq, envelope in read_stream(js, stream, types)]
            applied += await db.run(_apply_stream, db, table, stream.name, events)
    finally:
        await nc.close()
        db.close()
    return applied


def _apply_stream(
    db: Database, table: Mapping[str, Handler], stream: str, events: list[tuple[int, EventEnvelope]]
) -> int:
    with db.transaction() as conn:
        return sum(
            apply_once(
                conn,
                consumer=CONSUMER_NAME,
                handlers=table,
                envelope=envelope,
                stream=stream,
                stream_seq=seq,
                now=time.time(),
            )
            for seq, envelope in events
        )


def whole_report(db: Database) -> tuple[SalesReport | None, list[tuple[str, int]]]:
    model = SalesReadModel(db)
    span = model.sales_range()
    report = model.sales_report(*span) if span else None
    return report, model.popular_products(1000)


def differences(live: Database, rebuilt: Database) -> list[str]:
    (live_report, live_popular), (new_report, new_popular) = (
        whole_report(live),
        whole_report(rebuilt),
    )
    problems = []
    if live_report != new_report:
        problems.append(f"sales report differs:\n  live:    {live_report}\n  rebuilt: {new_report}")
    if live_popular != new_popular:
        problems.append(
            f"popular products differ:\n  live:    {live_popular}\n  rebuilt: {new_popular}"
        )
    return problems


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.analytics.rebuild")
    parser.add_argument(
        "--out", type=Path, help="rebuilt file (default <data>/analytics.rebuilt.sqlite3)"
    )
    parser.add_argument("--replace", action="store_true", help="move it over the live file")
    args = parser.parse_args(argv)
    try:
        url = env_str("MESHMART_NATS_URL")
    except ConfigError as error:
        sys.stderr.write(f"error: {error} (nats://host:port of the broker)\n")
        return 2
    # The same settings the service reads (services/kit/config.py).
    try:
        database_url = read_database_url(os.environ)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    data_dir = Path(env_str("MESHMART_DATA_DIR", ".run/data"))
    live_target: Path | str = database_url or data_dir / DB_FILE
    if args.replace and database_url:
        sys.stderr.write("error: --replace moves a file: the live read model is in "
                         "PostgreSQL (MESHMART_DATABASE_URL)\n")
        return 2
    out = args.out or data_dir / "analytics.rebuilt.sqlite3"
    started = time.perf_counter()
    applied = asyncio.run(rebuild(url, out))
    took = time.perf_counter() - started
    say(f"rebuilt {out} from {applied} events in {took:.2f}s")
    if isinstance(live_target, Path) and not live_target.exists():
        say(f"no live read model at {live_target}: nothing to compare")
        return 0
    live, rebuilt = Database(live_target, MIGRATIONS), Database(out, MIGRATIONS)
    try:
        problems = differences(live, rebuilt)
    finally:
        live.close()
        rebuilt.close()
    if problems:
        say("\n".join(problems))
        return 1
    say(f"identical to the incremental read model ({live.location})")
    if args.replace:
        out.replace(data_dir / DB_FILE)
        say(f"replaced {live.location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
