"""Three hosts (tools/mesh/hosts.py): a Consul server on each, instances placed across
them, each registered with its own host's agent and its sidecar on that agent's xDS, a
service with instances on several hosts on PostgreSQL; and the failures of the
distributed kind under steady load: the raft leader's process killed, a JetStream node
lost mid-publish, a whole host lost (kill -9), a host cut off from the network.

One mesh for the module (`make up HOSTS=3`'s code path, pods, Consul ACLs as
topology.toml says): the whole shop, so the edge runs (on host 1) and orders can be
placed as it forwards them, with catalog x3 (one per host) instead of two. NATS is a
JetStream cluster of three nodes, one per host. The loads are cart's ListProducts through
its own sidecar, publishes through inventory's and purchases as the edge (its sidecar's
listeners: tools/chaos/shop.py), at bounded rates, in our own namespaces.
The teardown checks that no process, namespace or bridge of the run is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
from meshmart.catalog.v1 import catalog_pb2_grpc
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from harness.callers import caller_channel
from harness.host import free_mesh_address
from harness.load import LoadReport, open_loop
from harness.mesh import health_of, pid_of, running, upstream_counter
from harness.wait import until
from tests.mesh.helpers import list_products
from tools.chaos.probe import NOT_ANSWERING
from tools.chaos.scenarios import background_load, events_settled, warm_up
from tools.chaos.shop import Buyers, EventAudit, OrderAudit, audit_events, audit_orders, shop
from tools.mesh import envoy, hosts
from tools.mesh.control import check_states
from tools.mesh.control.status import render_status
from tools.mesh.http import HTTPFailure, get_json
from tools.mesh.nats import Nats
from tools.mesh.plan import MeshPlan
from tools.mesh.postgres import Postgres
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import Instance, load_topology


@pytest.fixture(scope="module")
def three_hosts() -> Iterator[MeshPlan]:
    assert os.geteuid() == 0 and shutil.which("ip"), (
        "hosts are network namespaces: they need root and iproute2")
    # The whole shop (the edge runs only with every service), catalog on every host.
    full = load_topology()
    topology = full.only({**{name: s.instances for name, s in full.services.items()},
                          "catalog": 3})
    # catalog (instances on three hosts) keeps its state in PostgreSQL, whose server runs
    # as the postgres user: not under pytest's tmp dir (0700), in one it may pass (0711).
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-hosts-"))
    run_dir.chmod(0o711)
    plan = MeshPlan(topology=topology, address=free_mesh_address(topology), run_dir=run_dir,
                    pods=True, hosts=3)
    try:
        with running(plan, timeout=420):
            yield plan
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_three_consul_servers_form_one_raft_cluster_with_one_leader(three_hosts: MeshPlan) -> None:
    servers = hosts.raft_servers(three_hosts)
    assert sorted(s.node for s in servers) == ["meshmart", "meshmart-host2", "meshmart-host3"]
    assert all(s.voter for s in servers)
    assert sum(s.leader for s in servers) == 1
    # Every agent agrees on who leads.
    leaders = {hosts.leader(three_hosts, url) for url in hosts.agent_urls(three_hosts).values()}
    assert len(leaders) == 1 and leaders != {""}


def test_each_instance_registers_with_its_hosts_agent_and_its_sidecar_takes_its_xds(
    three_hosts: MeshPlan,
) -> None:
    placed = {i.instance_id: i.host for i in three_hosts.instances()}
    # A service's instances are spread: one catalog per host.
    assert sorted(placed[f"catalog-{n}"] for n in (1, 2, 3)) == [1, 2, 3]
    token = three_hosts.consul_token
    for service in ("catalog", "cart"):
        entries = get_json(f"{three_hosts.consul_url}/v1/catalog/service/{service}",
                           token=token)
        for entry in entries:
            assert entry["Node"] == hosts.node_name(placed[entry["ServiceID"]]), entry
    for inst in three_hosts.instances():
        dump = json.loads(urllib.request.urlopen(
            f"{inst.admin_url}/config_dump?resource=static_clusters", timeout=5).read())
        agents = [
            a["endpoint"]["address"]["socket_address"]["address"]
            for c in dump["configs"] if c["cluster"]["name"] == "local_agent"
            for e in c["cluster"]["load_assignment"]["endpoints"]
            for a in e["lb_endpoints"]
        ]
        assert agents == [three_hosts.host_address(inst.host)], (inst.instance_id, agents)


def test_a_service_on_several_hosts_keeps_its_state_in_postgresql_the_others_in_files(
    three_hosts: MeshPlan,
) -> None:
    databases = Postgres(three_hosts)
    # catalog (one per host) and payment (two) have instances on several hosts: no SQLite
    # file could be shared by them.
    assert databases.services == ["catalog", "payment"]
    for service in databases.services:
        assert not (three_hosts.data_dir / f"{service}.sqlite3").exists(), service
    assert (three_hosts.data_dir / "cart.sqlite3").exists()
    for number in (1, 2, 3):
        inst = three_hosts.instance(f"catalog-{number}")
        listener = int(databases.client_target(inst, "catalog").rpartition(":")[2])
        with three_hosts.reach(inst, listener) as target, psycopg.connect(
            databases.url("catalog", target), connect_timeout=10
        ) as conn:
            row = conn.execute("SELECT count(*) FROM products").fetchone()
        assert row is not None and row[0] > 0, inst.instance_id


def _term(url: str, token: str | None) -> int:
    stats = get_json(f"{url}/v1/agent/self", timeout=2, token=token)["Stats"]["raft"]
    return int(stats["term"])


def test_killing_the_consul_leader_elects_another_and_fails_no_call(
    three_hosts: MeshPlan,
) -> None:
    plan, token = three_hosts, three_hosts.consul_token
    urls = hosts.agent_urls(plan)
    old = hosts.leader(plan)
    victim = hosts.host_of_address(plan, old)
    assert victim is not None, old
    survivor = urls[next(h for h in urls if h != victim)]
    term_before = _term(survivor, token)
    program = f"infra:{'consul' if victim == 1 else f'consul-host{victim}'}"
    sup = Supervisor(plan)
    cart = plan.instance("cart-1")

    def another_leader() -> bool:
        """The survivor knows a leader of a newer term, and it is not the killed one."""
        leader = hosts.leader(plan, survivor)
        return leader not in ("", old) and _term(survivor, token) > term_before

    def back_as_follower() -> bool:
        """The killed server is back, a voter, and follows the leader."""
        servers = hosts.raft_servers(plan, urls[victim])
        return (len(servers) == 3 and all(s.voter for s in servers)
                and hosts.leader(plan, urls[victim]) not in ("", old))

    async def scenario() -> tuple[LoadReport, float, float]:
        async with caller_channel(plan, cart, "catalog") as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)

            async def call(_: int) -> None:
                await list_products(stub)

            load = asyncio.create_task(open_loop(call, rate=30, duration=16))
            await asyncio.sleep(3)
            os.kill(pid_of(plan, program), signal.SIGKILL)
            # Held down (supervisord would restart it within a second and it might win
            # the election again): the other two must elect one of themselves.
            await asyncio.to_thread(sup.stop, program)
            to_new_leader = await until(another_leader, 30, "a new raft leader", step=0.05,
                                        in_thread=True, not_yet=(HTTPFailure, KeyError))
            await asyncio.sleep(2)
            await asyncio.to_thread(sup.start, program)
            to_rejoin = await until(back_as_follower, 60, "the killed server back in raft",
                                    step=0.2, in_thread=True, not_yet=(HTTPFailure, KeyError))
            return await load, to_new_leader, to_rejoin

    report, to_new_leader, to_rejoin = asyncio.run(scenario())
    sys.stdout.write(
        f"\nkilled the Consul leader {old} (host {victim}, kill -9) under "
        f"{report.rate:.0f} ListProducts/s for {report.duration:.0f}s as cart: "
        f"sent {report.sent}, failed {report.failed} {report.failed_by_code}; new leader "
        f"{hosts.leader(plan, survivor)} after {to_new_leader:.2f}s; the killed server, "
        f"started 2 s later, back as a follower after {to_rejoin:.2f}s\n"
    )
    assert report.failed == 0, report.details
    assert report.sent >= 0.9 * report.rate * report.duration


def test_status_shows_the_hosts_the_raft_leader_and_each_instances_host(
    three_hosts: MeshPlan,
) -> None:
    text = render_status(three_hosts)
    leader_host = hosts.host_of_address(three_hosts, hosts.leader(three_hosts))
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line[:1].isdigit()}
    assert sorted(rows) == ["1", "2", "3"]
    assert [h for h, row in rows.items() if "LEADER" in row] == [str(leader_host)]
    for inst in three_hosts.instances():
        assert inst.instance_id in rows[str(inst.host)]
        line = next(x for x in text.splitlines() if x.split()[1:2] == [inst.instance_id])
        assert line.split()[2] == str(inst.host)


def _jsz(plan: MeshPlan, node: int = 1) -> dict[str, Any]:
    url = f"{Nats(plan).monitor_url_of(node)}/jsz?streams=true&config=true"
    body = get_json(url, timeout=3)
    return body if isinstance(body, dict) else {}


def _streams(plan: MeshPlan) -> dict[str, dict[str, Any]]:
    return {stream["name"]: stream for account in _jsz(plan).get("account_details") or []
            for stream in account.get("stream_detail") or []}


def test_nats_is_a_jetstream_cluster_of_three_and_every_stream_keeps_three_copies(
    three_hosts: MeshPlan,
) -> None:
    bus = Nats(three_hosts)
    assert [i.host for i in bus.node_instances()] == [1, 2, 3]
    meta = _jsz(three_hosts).get("meta_cluster") or {}
    assert meta.get("cluster_size") == 3, meta
    # inventory made the streams when it connected (through its sidecar, with R3).
    asyncio.run(until(lambda: {"USERS", "ORDERS", "PAYMENTS", "DEADLETTER"}
                      <= set(_streams(three_hosts)), 30, "the streams"))
    for name, stream in _streams(three_hosts).items():
        assert stream["config"]["num_replicas"] == 3, name
        assert len((stream.get("cluster") or {}).get("replicas") or []) == 2, stream["cluster"]


def test_a_jetstream_node_lost_mid_publish_loses_and_duplicates_nothing(
    three_hosts: MeshPlan,
) -> None:
    plan, bus = three_hosts, Nats(three_hosts)
    inventory = plan.instance("inventory-1")
    sup = Supervisor(plan)
    total, kill_at = 300, 80
    numbers: dict[str, float | int | str] = {"retries": 0}

    async def scenario() -> tuple[int, set[str]]:
        async with r3_stream(plan, inventory, "PROBE") as js:
            for i in range(total):
                if i == kill_at:
                    leader = (await js.stream_info("PROBE")).cluster.leader  # type: ignore[union-attr]
                    node = 1 if leader == "meshmart" else int(str(leader).rpartition("-")[2])
                    numbers["killed"] = f"nats-{node} ({leader}, the stream's leader)"
                    numbers["killed_program"] = f"infra:nats-{node}"
                    os.kill(pid_of(plan, f"infra:nats-{node}"), signal.SIGKILL)
                    await asyncio.to_thread(sup.stop, f"infra:nats-{node}")
                    killed = time.monotonic()
                started = time.monotonic()
                while True:  # a publisher that retries until acknowledged, same id
                    try:
                        await js.publish(f"probe.{i}", b"x", headers={"Nats-Msg-Id": f"p-{i}"})
                        break
                    except (TimeoutError, nats.errors.Error):
                        numbers["retries"] = int(numbers["retries"]) + 1
                        assert time.monotonic() - started < 60, f"publish {i} never acked"
                        await asyncio.sleep(0.1)
                if i == kill_at:
                    numbers["first_ack_after_kill"] = time.monotonic() - killed
                await asyncio.sleep(1 / 50)
            # The node back before the read-back: creating the audit's (R3) consumer
            # with a peer offline waits on the cluster, not on what was stored.
            await asyncio.to_thread(sup.start, str(numbers["killed_program"]))
            await until_whole(bus)
            info = await js.stream_info("PROBE")
            seen: set[str] = set()
            sub = await js.pull_subscribe("probe.>", durable="probe-audit", stream="PROBE")
            while len(seen) < info.state.messages:
                for msg in await sub.fetch(100, timeout=5):
                    assert msg.headers is not None
                    seen.add(msg.headers["Nats-Msg-Id"])
                    await msg.ack()
            await js.delete_stream("PROBE")
            return info.state.messages, seen

    try:
        stored, ids = asyncio.run(scenario())
    finally:
        for node in range(1, bus.nodes + 1):
            sup.start(f"infra:nats-{node}")
        asyncio.run(until_whole(bus))  # the next test starts on a whole cluster
    sys.stdout.write(
        f"\nkilled {numbers['killed']} (kill -9, held down) after {kill_at} of {total} "
        f"publishes at 50/s through inventory's sidecar: every one acknowledged, "
        f"{numbers['retries']} retries, the first ack after the kill in "
        f"{float(numbers['first_ack_after_kill']):.2f}s; the stream holds {stored} "
        f"messages, {len(ids)} distinct ids\n"
    )
    assert stored == total and ids == {f"p-{i}" for i in range(total)}


@asynccontextmanager
async def r3_stream(
    plan: MeshPlan, client: Instance, name: str
) -> AsyncIterator[JetStreamContext]:
    """JetStream through ``client``'s sidecar, with a stream ``name`` (subjects
    ``<name lowered>.>``) kept on three nodes, made once the cluster is whole."""
    bus = Nats(plan)
    with plan.reach(client, bus.client_port(client)) as target:
        nc = await nats.connect(f"nats://{target}", name=f"test-{name.lower()}",
                                reconnect_time_wait=0.2, max_reconnect_attempts=-1,
                                connect_timeout=2)
        try:
            js = nc.jetstream(timeout=2)
            await until_whole(bus)
            await js.add_stream(StreamConfig(
                name=name, subjects=[f"{name.lower()}.>"], num_replicas=3,
                storage=StorageType.FILE, duplicate_window=3600))
            yield js
        finally:
            await nc.close()


async def until_whole(bus: Nats) -> None:
    """Until every NATS node is back in the JetStream cluster and current."""
    await until(bus.cluster_whole, 90, "every NATS node in the JetStream cluster, current",
                step=0.2, in_thread=True, not_yet=(HTTPFailure,))


async def _publish_all(js: Any, stream: str, total: int, rate: float,
                       counts: dict[str, int]) -> None:
    """``total`` publishes to ``stream`` at ``rate``, each retried with its message id
    until acknowledged (what the outbox relay does)."""
    for i in range(total):
        started = time.monotonic()
        while True:
            try:
                await js.publish(f"{stream.lower()}.{i}", b"x",
                                 headers={"Nats-Msg-Id": f"{stream}-{i}"})
                break
            except (TimeoutError, nats.errors.Error):
                counts["retries"] = counts.get("retries", 0) + 1
                assert time.monotonic() - started < 60, f"publish {i} never acknowledged"
                await asyncio.sleep(0.1)
        await asyncio.sleep(1 / rate)


async def _stored_ids(js: Any, stream: str) -> tuple[int, set[str]]:
    info = await js.stream_info(stream)
    seen: set[str] = set()
    sub = await js.pull_subscribe(f"{stream.lower()}.>", durable=f"{stream}-audit",
                                  stream=stream)
    while len(seen) < info.state.messages:
        for msg in await sub.fetch(100, timeout=5):
            seen.add(msg.headers["Nats-Msg-Id"])
            await msg.ack()
    return info.state.messages, seen


def _back_in_rotation(
    plan: MeshPlan, victim: int, seen_by: Mapping[str, tuple[str, int]]
) -> Callable[[], bool]:
    """Whether every instance of host ``victim`` passes in Consul again and each caller's
    sidecar (caller instance -> (service, how many)) has that many healthy endpoints of
    the service."""
    lost = [i.instance_id for i in plan.instances() if i.host == victim]

    def check() -> bool:
        return all(health_of(plan, i) == "passing" for i in lost) and all(
            sum(h.healthy for h in envoy.hosts(plan.instance(caller).admin_url, service))
            == count for caller, (service, count) in seen_by.items())

    return check


def _through_a_host_failure(
    plan: MeshPlan, victim: int, stream: str, fail: Callable[[], Awaitable[float]],
    seconds: float = 20,
) -> tuple[LoadReport, float, int, set[str], int, float]:
    """cart's ListProducts at 30/s for ``seconds`` through its sidecar and 300 publishes
    at 20/s through inventory's (each retried until acknowledged) while ``fail`` fails
    host ``victim`` and lets it back (3 s into the load), returning when it starts again
    (monotonic); then until its instances are back in rotation. Checks that every
    publish is stored once. (The load, the seconds from the host's return to its
    instances back in rotation, the messages stored, their distinct ids, the publish
    retries, and when the load started: monotonic, no later than its first call.)"""
    cart, inventory = plan.instance("cart-1"), plan.instance("inventory-1")
    back_in_rotation = _back_in_rotation(plan, victim, {"cart-1": ("catalog", 3)})
    total, counts = 300, {"retries": 0}
    started = 0.0

    async def scenario() -> tuple[LoadReport, float, int, set[str]]:
        nonlocal started
        async with r3_stream(plan, inventory, stream) as js:
            async with caller_channel(plan, cart, "catalog") as channel:
                stub = catalog_pb2_grpc.CatalogServiceStub(channel)

                async def call(_: int) -> None:
                    await list_products(stub)

                started = time.monotonic()
                load = asyncio.create_task(open_loop(call, rate=30, duration=seconds))
                events = asyncio.create_task(_publish_all(js, stream, total, 20, counts))
                await asyncio.sleep(3)
                back_at = await fail()
                await until(back_in_rotation, 120, f"host {victim}'s instances back in rotation",
                            step=0.2, in_thread=True, not_yet=(HTTPFailure, KeyError))
                to_rotation = time.monotonic() - back_at
                report = await load
                await events
            stored, ids = await _stored_ids(js, stream)
            await js.delete_stream(stream)
            return report, to_rotation, stored, ids

    report, to_rotation, stored, ids = asyncio.run(scenario())
    assert stored == total and ids == {f"{stream}-{i}" for i in range(total)}, (stored, total)
    return report, to_rotation, stored, ids, counts["retries"], started


def _losing_the_host(plan: MeshPlan, victim: int, down_for: float = 5,
                     killed: list[float] | None = None) -> Callable[[], Awaitable[float]]:
    """A ``fail`` for host ``victim``: the machine is gone, every process of it
    (``hosts.host_programs``) at once, kill -9, held down ``down_for`` seconds (supervisord
    would restart them), then started again. Appends the kill's moment (monotonic) to
    ``killed``; returns the moment of the start."""
    sup = Supervisor(plan)
    programs = hosts.host_programs(plan, victim)

    async def lose_the_host() -> float:
        pids = {f"{p['group']}:{p['name']}": int(p["pid"]) for p in sup.processes()}
        for name in programs:  # one listing first: the kills then land within a moment
            if pid := pids.get(name):
                os.kill(pid, signal.SIGKILL)
        if killed is not None:
            killed.append(time.monotonic())
        for name in programs:
            await asyncio.to_thread(sup.stop, name)
        await asyncio.sleep(down_for)
        back_at = time.monotonic()
        for name in programs:
            await asyncio.to_thread(sup.start, name)
        return back_at

    return lose_the_host


def _failures_from(report: LoadReport, kill_at: float) -> str:
    """Each failed call of ``report``, when it was sent and when it ended, in seconds from
    the kill (``kill_at``, on the load's clock)."""
    return ", ".join(
        f"{code} sent {end - (latency or 0) - kill_at:+.2f}s ended {end - kill_at:+.2f}s"
        for end, latency, code in report.calls if code != "OK")


def _host_restored(plan: MeshPlan, victim: int) -> None:
    """Every program of host ``victim`` running and the JetStream cluster whole again (the
    end of a host test, passed or failed: the next test starts on a whole mesh)."""
    sup = Supervisor(plan)
    for name in hosts.host_programs(plan, victim):
        sup.start(name)
    asyncio.run(until_whole(Nats(plan)))


def test_losing_a_whole_host_fails_no_call_loses_no_event_and_it_comes_back(
    three_hosts: MeshPlan,
) -> None:
    plan, victim = three_hosts, 2
    lost = [i.instance_id for i in plan.instances() if i.host == victim]
    assert "catalog-1" in lost, lost
    killed: list[float] = []
    try:
        report, to_rotation, stored, ids, retries, started = _through_a_host_failure(
            plan, victim, "HOSTLOSS", _losing_the_host(plan, victim, killed=killed))
    finally:
        _host_restored(plan, victim)
    failures = _failures_from(report, killed[0] - started)
    sys.stdout.write(
        f"\nlost host {victim} (its agent, {', '.join(lost)} and their sidecars, "
        f"nats-{victim} and its sidecar: kill -9, 5 s down) under {report.rate:.0f} "
        f"ListProducts/s as cart: sent "
        f"{report.sent}, failed {report.failed} {report.details} [{failures}]; 300 publishes "
        f"at 20/s through inventory's sidecar, {retries} retries, {stored} stored, "
        f"{len(ids)} distinct; back in rotation {to_rotation:.1f}s after its start\n"
    )
    assert report.failed == 0, (report.details, failures)


# Purchases as the edge forwards them (tools/chaos/shop.py): a customer has one purchase in
# flight at a time (its cart is its own), so the rate needs a few customers. At 3/s on the
# shared two-core box (load 31-47) PlaceOrder's p50 reached 0.9-1.9 s and order-1, on
# host 3, starved past its 1 s health check: Consul took order's only instance out of the
# edge's rotation for ~2 s (9-12 purchases "no healthy upstream"), the box's doing, not
# the lost host's. 1.5/s is steady load the box carries.
ORDER_RATE, CUSTOMERS = 1.5, 8
# The services PlaceOrder reaches that run one instance (topology.toml): a purchase that
# fails while one of them is out of Consul's rotation is not the issue's promise ("fails
# no call on services that have an instance elsewhere").
ONE_INSTANCE_ON_THE_PATH = ("order", "user", "cart", "inventory")
# How long Envoy's endpoints may lag behind Consul's checks (EDS), either way.
EDS_LAG = 1.0


def test_losing_a_host_under_orders_loses_no_acknowledged_order_payment_or_event(
    three_hosts: MeshPlan,
) -> None:
    """Host 2 holds payment-1 (payment-2 is on host 3), catalog-1, analytics' one instance
    and a NATS node; order, user, cart and inventory run elsewhere, and the edge on host
    1. Under steady purchases (AddItem, then PlaceOrder, the whole saga, as the edge) the
    whole host is killed (kill -9), held down 5 s, and started again. No purchase fails
    (every service PlaceOrder reaches has an instance elsewhere: a Charge that dies with
    payment-1 is retried on payment-2 by order's sidecar, with its idempotency key, which
    payment keeps in PostgreSQL), and then, with every outbox published and every consumer
    caught up: every order PlaceOrder answered is in order's database, CONFIRMED or
    CANCELLED, no order is charged twice or keeps a charge it was cancelled for, no
    captured payment is for an unknown order, and notification and analytics made of the
    order, payment and refund events exactly what the orders say (none lost while
    analytics was down, none applied twice); the host's instances come back into
    rotation."""
    plan, victim = three_hosts, 2
    on_victim = {i.service for i in plan.instances() if i.host == victim}
    edge_host = 1  # the edge is on this machine, host 1 (docs/design.md, "Hosts")
    assert "payment" in on_victim and "order" not in on_victim and victim != edge_host
    killed: list[float] = []
    lose_the_host = _losing_the_host(plan, victim, killed=killed)
    back_in_rotation = _back_in_rotation(
        plan, victim, {"order-1": ("payment", 2), "cart-1": ("catalog", 3)})

    single = [f"{name}-1" for name in ONE_INSTANCE_ON_THE_PATH]
    assert all(plan.topology.services[name].instances == 1 for name in ONE_INSTANCE_ON_THE_PATH)
    outages: list[tuple[float, str]] = []  # (load clock, instance) seen not passing
    started = 0.0

    async def watch_single(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:  # (host 1's agent answers 500 while it forwards to the dead server)
                checks, _ = await asyncio.to_thread(check_states, plan)
            except HTTPFailure:
                checks = None
            now = time.monotonic() - started
            if checks is not None:
                outages.extend((now, i) for i in single if checks.get(i) != "passing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    async def scenario() -> tuple[LoadReport, Buyers, float, float, OrderAudit, EventAudit]:
        nonlocal started
        async with shop(plan) as s:

            async def analytics_answers() -> bool:
                await s.sales()
                return True

            users = await s.customers(CUSTOMERS, "hostloss")
            await until(lambda: events_settled(plan), 60, "earlier events to settle",
                        in_thread=True, not_yet=(HTTPFailure,))
            # analytics' one instance is on host 2, which the module's earlier tests took
            # down or cut off: it may not be back in the edge's sidecar's endpoints yet.
            await until(analytics_answers, 60, "analytics answering the edge",
                        step=0.5, not_yet=NOT_ANSWERING)
            sales_before = await s.sales()
            buyers = Buyers(s, users)
            await warm_up(buyers.purchase, calls=2)
            async with background_load(buyers.purchase, rate=ORDER_RATE, max_seconds=180,
                                       max_in_flight=4 * CUSTOMERS) as (stop, load):
                started = time.monotonic()
                watching = asyncio.Event()
                watcher = asyncio.create_task(watch_single(watching))
                await asyncio.sleep(4)
                back_at = await lose_the_host()
                await until(back_in_rotation, 120, f"host {victim}'s instances back in "
                            "rotation", step=0.2, in_thread=True,
                            not_yet=(HTTPFailure, KeyError))
                to_rotation = time.monotonic() - back_at
                await asyncio.sleep(4)  # purchases with the host back
                stop.set()
                report = await load
                watching.set()
                await watcher
            await until(lambda: events_settled(plan), 120, "every outbox published and "
                        "every consumer caught up", step=0.25, in_thread=True,
                        not_yet=(HTTPFailure, RuntimeError))
            orders = await audit_orders(s, users)
            # Passing in Consul is not yet in the edge's sidecar's endpoints: the audit
            # reads analytics (host 2's only instance) as the edge once it answers there.
            await until(analytics_answers, 60, "analytics answering the edge again",
                        step=0.5, not_yet=NOT_ANSWERING)
            events = await audit_events(s, plan, users, sales_before)
        return report, buyers, to_rotation, killed[0] - started, orders, events

    order = plan.instance("order-1")
    retried = upstream_counter(order, "payment", "upstream_rq_retry")
    try:
        report, buyers, to_rotation, kill_at, orders, events = asyncio.run(scenario())
    finally:
        _host_restored(plan, victim)
    retried = upstream_counter(order, "payment", "upstream_rq_retry") - retried
    lost = ", ".join(i.instance_id for i in plan.instances() if i.host == victim)
    failures = _failures_from(report, kill_at)
    # A failed purchase is excused only if a one-instance service of its path was out of
    # Consul's rotation while it ran (give or take Envoy's lag): which, and when.
    excused, unexcused = [], []
    for end, latency, code in report.calls:
        if code == "OK":
            continue
        sent = end - (latency or 0)
        out = sorted({i for at, i in outages if sent - EDS_LAG <= at <= end + EDS_LAG})
        (excused if out and code == "UNAVAILABLE" else unexcused).append(
            f"{code} sent {sent - kill_at:+.2f}s: {' '.join(out) or 'no outage'}")
    down = sorted({i for _, i in outages})
    sys.stdout.write(
        f"\nlost host {victim} ({lost}, nats-{victim}, its agent: kill -9 {kill_at:.1f}s "
        f"into the load, 5 s down) under {report.rate:.0f} purchases/s as the edge: "
        f"{report.summary()}; failed {report.failed} {report.details} [{failures}]; "
        f"order's sidecar retried {retried} calls to payment; out of Consul's rotation "
        f"meanwhile (one instance, not on host {victim}): {down or 'none'}; excused "
        f"{len(excused)}, unexcused {unexcused}; back in rotation "
        f"{to_rotation:.1f}s after its start\naudit: {orders.summary()}\n"
        f"events: {events.summary()}\n"
    )
    assert not unexcused, (report.details, unexcused)
    # Every order the edge was answered for is in order's database, in a final state.
    missing = set(buyers.placed) - set(orders.states)
    assert not missing, missing
    assert all(orders.states[o] in ("STATE_CONFIRMED", "STATE_CANCELLED")
               for o in buyers.placed), orders.summary()
    assert orders.stuck == [] and orders.orders == len(buyers.placed), orders.summary()
    assert orders.money_is_right, orders.summary()
    assert events.exact, events.summary()


def test_a_partitioned_host_loses_no_event_fails_no_call_once_out_of_rotation_and_heals(
    three_hosts: MeshPlan,
) -> None:
    """Host 2 cut off (every packet of its namespaces dropped) until cart's sidecar has
    taken its catalog out of rotation, then 3 s more, then healed. A silent host answers
    nothing, not even a reset: a call already on its way there waits out the route's
    2 s timeout (Consul 1.14 has no per-try timeout to retry it elsewhere sooner: see
    docs/mesh.md). So the promise is: no event lost or doubled, no call sent after the
    mesh took the host out of rotation fails, the ones before fail only by that timeout,
    and the host comes back into rotation."""
    plan, bus, victim = three_hosts, Nats(three_hosts), 2
    cart, silent = plan.instance("cart-1"), plan.instance("catalog-1")
    assert silent.host == victim
    out_at: list[float] = []

    def out_of_rotation() -> bool:
        healthy = {h.address for h in envoy.hosts(cart.admin_url, "catalog") if h.healthy}
        return bool(healthy) and not any(a.startswith(f"{silent.address}:") for a in healthy)

    async def cut_the_host_off() -> float:
        with hosts.partitioned(plan, victim):
            await until(out_of_rotation, 60, "catalog-1 out of cart's rotation", step=0.2,
                        in_thread=True, not_yet=(HTTPFailure,))
            out_at.append(time.monotonic())
            await asyncio.sleep(3)  # the partition goes on, the mesh now routing around it
        return time.monotonic()

    try:
        report, to_rotation, stored, ids, retries, started = _through_a_host_failure(
            plan, victim, "PARTITION", cut_the_host_off, seconds=30)
    finally:
        asyncio.run(until_whole(bus))
    out = out_at[0] - started  # on the load's clock (which starts no earlier)
    sent_at = [(end - latency, code) for end, latency, code in report.calls
               if latency is not None]
    late = [(round(at, 2), code) for at, code in sent_at if code != "OK" and at >= out]
    sys.stdout.write(
        f"\npartitioned host {victim} ({', '.join(hosts.host_namespaces(plan, victim))}: "
        f"every packet dropped) under {report.rate:.0f} ListProducts/s as cart: out of "
        f"rotation {out - 3:.1f}s after the cut; sent {report.sent}, failed {report.failed} "
        f"{report.failed_by_code} {report.details}, {len(late)} of them sent after; 300 "
        f"publishes at 20/s through inventory's sidecar, {retries} retries, {stored} "
        f"stored, {len(ids)} distinct; back in rotation {to_rotation:.1f}s after it healed\n"
    )
    assert not late, late
    assert set(report.failed_by_code) <= {"UNAVAILABLE"}, report.details
    assert report.details.get("UNAVAILABLE", "upstream request timeout") == (
        "upstream request timeout"), report.details
