"""`make demo`: every resilience pattern of meshmart, shown on the running mesh.

    make up && make demo            (or: python -m tools.chaos.demo [--only kill,hung])

Runs the chaos scenarios of tools/chaos/scenarios.py one after another against the mesh
`make up` started, each shorter than in the tests, and says in plain words what is
broken, what the mesh does about it and what the numbers were. Every scenario puts the
mesh back to healthy before the next one starts; the whole run takes a few minutes and
stops by itself. Load goes to loopback addresses only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from harness.host import settled
from harness.load import LoadReport
from harness.wait import TimedOut
from tools.chaos import probe, scenarios
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import ROOT, load_topology


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def chapter(number: int, title: str, story: str) -> None:
    say()
    say(f"== {number}. {title}")
    for line in textwrap.wrap(" ".join(story.split()), 88):
        say(f"   {line}")


def load_lines(label: str, report: LoadReport) -> None:
    for n, line in enumerate(report.summary().splitlines()):
        say(f"  {label if n == 0 else ' ' * len(label)} {line}")


def verdict(ok: bool, text: str) -> None:
    say(f"  {'OK  ' if ok else 'MISS'} {text}")


async def kill(plan: MeshPlan) -> None:
    chapter(1, "An instance dies under load",
            """catalog runs as two instances. While cart's sidecar sends 150 calls a second
            to catalog, one instance is killed with SIGKILL: no goodbye, no
            deregistration. The callers' Envoys retry the calls that hit it on the other
            instance and eject it; Consul's health check turns it critical; supervisord
            starts it again and it rejoins the rotation.""")
    r = await scenarios.kill_one_catalog_instance(plan, say, rate=150)
    load_lines("load:", r.load)
    verdict(r.load.failed == 0, f"{r.load.failed} failed client calls "
            f"(cart's Envoy retried {r.retries} times)")


async def rolling(plan: MeshPlan) -> None:
    victims = ", ".join(i.instance_id for i in scenarios.replicated_instances(plan))
    chapter(2, "A rolling restart",
            f"""Every instance of the services that run more than one ({victims}) is
            restarted the graceful way, one at a time, under load: SIGTERM -> health
            NOT_SERVING -> deregistered from Consul -> in-flight calls drained -> exit ->
            supervisord starts it -> passing -> back in every caller's Envoy, and only then
            the next one.""")
    r = await scenarios.rolling_restart(plan, say)
    for service, report in r.loads.items():
        load_lines(f"{service:<14}", report)
    verdict(r.failed == 0, f"{r.failed} failed calls over {len(r.steps)} restarts "
            f"(retries by the callers' Envoys: {r.retries})")


async def flaky(plan: MeshPlan) -> None:
    chapter(3, "A flaky payment provider",
            """Both payment instances now answer 30% of their Charges with UNAVAILABLE.
            Customers keep buying. Order's sidecar retries each failed Charge (up to 3
            times, on the other instance first); when every try fails, order's saga
            cancels the order, releases the stock and refunds anything charged. Then every
            order is checked against the payments.""")
    r = await scenarios.flaky_payment(plan, say, rate=4, seconds=10, customers=8)
    load_lines("orders:", r.load)
    say(f"  audit: {r.audit.summary()}")
    verdict(not r.audit.stuck and r.audit.money_is_right and r.load.failed == 0,
            f"every order CONFIRMED or CANCELLED, {len(r.audit.double_charged)} double charges; "
            f"order's Envoy retried {r.retries} Charges")


async def hung(plan: MeshPlan) -> None:
    chapter(4, "A payment provider that hangs",
            """Both payment instances now wait 30 s before answering. Order's sidecar lets at
            most 16 calls to payment be in flight: once they are stuck, the circuit is open
            and every further Charge is refused at once instead of waiting for its
            deadline. The storefront dashboard, which also asks payment, gives up on it
            after 500 ms and answers without it, saying so in `degraded`.""")
    r = await scenarios.hung_payment(plan, say, rate=80, seconds=8)
    load_lines("charges:", r.during)
    rejected = r.during.latency_ms(99, "UNAVAILABLE")
    say(f"  refused by the open circuit: {r.during.codes['UNAVAILABLE']} calls, p99 "
        f"{rejected:.1f} ms, max {r.during.latency_ms(100, 'UNAVAILABLE'):.1f} ms "
        f"(order's Envoy counted {r.overflowed} overflows); waited for the deadline: "
        f"{r.during.codes['DEADLINE_EXCEEDED']}")
    load_lines("dashboard:", r.dashboard)
    load_lines("after:", r.after)
    load_lines("dashboard after:", r.dashboard_after)
    verdict(rejected < 10 and r.dashboard.failed == 0 and r.after.failed == 0,
            f"fail fast p99 {rejected:.1f} ms (goal < 10 ms), dashboard never failed, "
            "everything recovered once payment answered again")


async def bus(plan: MeshPlan) -> None:
    chapter(5, "The event bus dies",
            """The NATS server is killed with SIGKILL while customers buy, and kept down for
            a few seconds. Orders still commit: their events wait in each service's
            outbox (written in the same transaction as the order) until NATS is back;
            JetStream drops re-sent duplicates by message id and every consumer ignores
            an event it has already applied. Each order must end up as exactly one
            notification and one analytics entry.""")
    r = await scenarios.nats_killed(plan, say, rate=3, seconds=10, customers=6, down_for=3)
    load_lines("orders:", r.load)
    say(f"  {r.events.summary()}")
    verdict(r.events.exact and r.load.failed == 0, "0 lost, 0 duplicated")


async def denied(plan: MeshPlan) -> None:
    chapter(6, "A caller outside the call graph",
            """Intentions deny by default and allow only the edges of the call graph, down
            to gRPC methods: storefront may list payments, only order may charge.""")
    r = await scenarios.caller_outside_the_call_graph(plan, say)
    verdict(r.codes == {"ListPayments": "OK", "Charge": "PERMISSION_DENIED"} and r.counted >= 1,
            "denied by payment's sidecar, before reaching the payment process")


CHAPTERS: dict[str, Callable[[MeshPlan], Awaitable[None]]] = {
    "kill": kill, "rolling": rolling, "flaky": flaky, "hung": hung, "bus": bus,
    "denied": denied,
}


async def run(plan: MeshPlan, only: list[str]) -> None:
    started = time.monotonic()
    health = await probe.mesh_health(plan)
    if not health.healthy:
        say(f"the mesh is not healthy yet ({health}); waiting for it...")
        await probe.restore(plan)
    for name in only:
        await settled(plan)
        await CHAPTERS[name](plan)
    say()
    say(f"demo done in {time.monotonic() - started:.0f}s; the mesh is healthy. "
        "`make status` shows each caller's retries, overflows and ejections.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chaos.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1", help="loopback address of the mesh")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    parser.add_argument("--only", default=",".join(CHAPTERS),
                        help=f"comma-separated chapters ({', '.join(CHAPTERS)})")
    args = parser.parse_args(argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in only if c not in CHAPTERS]
    if unknown:
        parser.error(f"unknown chapters {unknown}; choose from {', '.join(CHAPTERS)}")
    plan = MeshPlan(topology=load_topology(), address=args.address,
                    run_dir=args.run_dir.resolve())
    if not Supervisor(plan).running():
        sys.stderr.write(f"no mesh runs at {plan.address} ({plan.run_dir}): `make up` first\n")
        return 1
    try:
        asyncio.run(run(plan, only))
    except (probe.ChaosError, TimedOut) as error:
        sys.stderr.write(f"demo stopped: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
