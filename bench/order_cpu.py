"""Where PlaceOrder's CPU goes: the whole shop started fresh (the code path of `make up`),
--orders users prepared (register, login, one cart item each: not timed), then
--workers clients in a closed loop through the edge's REST face for --seconds
(bench/place_order.py's saturation phase), and an open loop at half that rate.

    .venv/bin/python bench/order_cpu.py --out DIR [--orders 420] [--seconds 8] [--rate -1]
        [--spy order-1,inventory-1,payment-1] [--spy-flags "--nonblocking --threads --idle -r 50"]
        [--no-spy]

Prints orders/s, p50/p99, the load average, and the CPU seconds every process of the shop
used during the saturation phase, less what it used idle over as long just before, per
order. With py-spy (on PATH, or in the venv; not a dependency) it records the --spy
processes during the saturation phase, raw collapsed stacks per thread, into DIR. Ends
with the audit of order's and payment's databases (bench/place_order.audit). Run it from
two work trees in turn (a before commit and the change) for a side-by-side comparison
(bench/TUNING.md h.). The edge runs with the benchmark's PlaceOrder bucket.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import place_order
from harness.host import cpu_seconds, free_mesh_address, settled
from tools.mesh import control
from tools.mesh.edge import api
from tools.mesh.edge.mesh import Edge
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import ROOT, load_topology

p = argparse.ArgumentParser()
p.add_argument("--orders", type=int, default=600)
p.add_argument("--workers", type=int, default=8)
p.add_argument("--seconds", type=float, default=6)
p.add_argument("--spy", default="order-1,inventory-1,payment-1,payment-2")
p.add_argument("--out", type=Path, required=True)
p.add_argument("--no-spy", action="store_true")
p.add_argument("--rate", type=float, default=0, help="also an open loop at this rate")
p.add_argument("--spy-flags", default="--nonblocking --threads --idle -r 50")
args = p.parse_args()
PY_SPY = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
SPYFLAGS = args.spy_flags.split()
args.out.mkdir(parents=True, exist_ok=True)
os.environ[api.PLACE_ORDER_RATE_SETTING] = str(place_order.EDGE_PLACE_ORDER_RATE)
run_dir = Path(tempfile.mkdtemp(prefix="meshmart-prof-"))
topology = load_topology()
plan = MeshPlan(topology=topology, address=free_mesh_address(topology, first=40), run_dir=run_dir,
                extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
edge = Edge(plan)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
spies = []
try:
    control.up(plan, timeout=400, out=sys.stderr)
    procs = {p["name"]: int(p["pid"]) for p in Supervisor(plan).processes() if p["pid"]}
    asyncio.run(settled(plan))
    client = place_order.EdgeClient(f"http://{plan.address}:{edge.settings.port}")
    t0 = time.perf_counter()
    shoppers = place_order.prepare(plan.instance("user-1").grpc_target, client, args.orders)
    print(f"prepared {len(shoppers)} in {time.perf_counter()-t0:.1f}s", flush=True)
    client.place_order(shoppers.pop())
    for s in shoppers[:5]:
        client.place_order(s)
    shoppers = shoppers[5:]
    asyncio.run(settled(plan))
    load0 = os.getloadavg()
    if not args.no_spy:
        for name in args.spy.split(","):
            if name in procs:
                spies.append(subprocess.Popen(
                    [PY_SPY, "record", *SPYFLAGS, "-f", "raw",
                     "-o", str(args.out / f"{name}.txt"), "-p", str(procs[name])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
    i0 = {n: cpu_seconds(pid) for n, pid in procs.items()}
    time.sleep(args.seconds)
    idle = {n: (cpu_seconds(pid) - i0[n]) / args.seconds for n, pid in procs.items()}
    before = {n: cpu_seconds(pid) for n, pid in procs.items()}
    w0 = time.perf_counter()
    sat = place_order.saturation(client, shoppers, args.workers, args.seconds)
    wall = time.perf_counter() - w0
    after = {n: cpu_seconds(pid) for n, pid in procs.items()}
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(60)
    load1 = os.getloadavg()
    used = {n: max(0.0, after[n] - before[n] - idle[n] * wall) for n in procs}
    print(f"idle shop: {sum(idle.values()):.2f} cores (subtracted below)")
    total = sum(used.values())
    print(f"saturation: {sat.orders} orders in {sat.seconds:.2f}s = {sat.orders_per_s:.1f}/s "
          f"p50 {sat.p50_ms:.0f} p99 {sat.p99_ms:.0f} failed {sat.failed}; "
          f"load {load0[0]:.2f} -> {load1[0]:.2f}")
    per_order = 1000 * total / max(sat.orders, 1)
    print(f"shop CPU {total:.2f}s over {wall:.2f}s = {total / wall:.2f} cores; "
          f"per order {per_order:.2f} ms")
    for n, u in sorted(used.items(), key=lambda kv: -kv[1]):
        if u > 0.01:
            print(f"  {n:<24} {u:6.2f}s  {1000 * u / max(sat.orders, 1):6.2f} ms/order  "
                  f"{u / wall:5.2f} cores")
    if args.rate:
        left = shoppers[sat.sent:]
        rate = args.rate if args.rate > 0 else max(1.0, round(sat.orders_per_s / 2, 1))
        slow = place_order.at_rate(client, left, rate, args.seconds)
        print(f"at {rate}/s: {slow.orders} p50 {slow.p50_ms:.0f} p99 {slow.p99_ms:.0f} "
              f"failed {slow.failed}")
    print(place_order.audit(plan.data_dir))
    (args.out / "cpu.json").write_text(
        json.dumps({"used": used, "wall": wall, "orders": sat.orders}))
finally:
    for spy in spies:
        if spy.poll() is None:
            spy.kill()
    control.down(plan, timeout=120, out=sys.stderr)
    shutil.rmtree(run_dir, ignore_errors=True)
