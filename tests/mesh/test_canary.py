"""The canary of recommendation through the real mesh: Python v1 (recommendation-1, -2) and
Go v2 (recommendation-3, -4) under one Consul name, divided by the service-splitter,
picked by the x-meshmart-version header, v2 failing over to v1.

Every call is made "as storefront": to storefront-1's sidecar listener for recommendation,
where the storefront process sends its own calls (with pods through a port forward into
storefront-1's pod, harness/callers.py), so storefront's Envoy applies the split,
the routes, the retries and the failover. Each answer names the release that gave it in
its x-meshmart-version response header. The split is changed the way `make canary` does
(tools/mesh/canary.py: a live config write), and a change counts as made once storefront's
Envoy applies it. Each test puts the committed split (10%) back and restarts what it
stopped. The calls are for a customer registered with the user service (recommendation
answers NOT_FOUND for a user it does not know).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
import pytest
from meshmart.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc
from meshmart.user.v1 import user_pb2_grpc

from harness.callers import as_edge, caller_channel
from harness.mesh import health_of, pid_of
from harness.shop import register_user
from harness.wait import until
from tools.mesh import canary, envoy
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor

pytestmark = pytest.mark.mesh

SERVICE = "recommendation"
CALLER = "storefront-1"
COMMITTED_SPLIT = 10  # consul/config-entries/recommendation/service-splitter.hcl
TIMEOUT = 10.0


async def set_split(mesh: MeshPlan, percent: int, storefront: Storefront | None = None) -> float:
    """`make canary PCT=<percent>`, done once storefront's Envoy routes with it; returns the
    moment from which every call it starts is routed by the new split.

    The config dump shows a new route on Envoy's main thread, which then posts it to the
    worker (one: the sidecars run --concurrency 1). A call started after that, once
    answered, has made the worker's event loop turn past the post, so every call started
    after its answer is routed by the new split: that call is the barrier."""
    releases = canary.releases(mesh, SERVICE)
    canary.set_split(mesh, releases, Decimal(percent))
    caller = mesh.instance(CALLER)
    wanted = {releases.stable: 100.0 - percent, releases.canary: float(percent)}
    await until(
        lambda: canary.applied_split(caller.admin_url, SERVICE) == wanted,
        30, f"storefront's Envoy to apply the {percent}% split",
    )
    if storefront is not None:
        await release_of(storefront)
    return time.monotonic()


@dataclass(frozen=True)
class Storefront:
    """Calls recommendation as storefront does, for one registered customer."""

    stub: recommendation_pb2_grpc.RecommendationServiceStub
    request: recommendation_pb2.RecommendRequest


@pytest.fixture(scope="module")
async def customer(mesh: MeshPlan) -> str:
    """A user signed up as the edge forwards a shopper's sign-up (harness/callers.py)."""
    async with as_edge(mesh, "user") as channel:
        user = await register_user(
            user_pb2_grpc.UserServiceStub(channel),
            f"canary-{uuid.uuid4().hex[:12]}@example.com",
            "Canary Customer",
            timeout_seconds=TIMEOUT,
        )
    return user.user_id


@pytest.fixture
async def storefront(mesh: MeshPlan, customer: str) -> AsyncIterator[Storefront]:
    async with caller_channel(mesh, mesh.instance(CALLER), SERVICE) as channel:
        yield Storefront(
            recommendation_pb2_grpc.RecommendationServiceStub(channel),
            recommendation_pb2.RecommendRequest(user_id=customer, limit=3),
        )
    await set_split(mesh, COMMITTED_SPLIT)


async def answered_by(storefront: Storefront, headers: tuple[tuple[str, str], ...] = ()) -> str:
    """One Recommend; the release that answered it."""
    call = storefront.stub.Recommend(storefront.request, timeout=TIMEOUT, metadata=headers)
    reply = await call
    assert len(reply.products) == 3
    return str(dict(await call.initial_metadata()).get("x-meshmart-version", "(none)"))


async def release_of(storefront: Storefront) -> tuple[str, str]:
    """One Recommend: (the release that answered, "" or the error it answered with). Both
    releases send the header before validating or calling upstreams, so an error the
    service itself returned names its release too; one the mesh made up does not."""
    call = storefront.stub.Recommend(storefront.request, timeout=TIMEOUT)
    try:
        await call
        error = ""
    except grpc.aio.AioRpcError as failure:
        error = f"{failure.code().name}: {failure.details()}"
    release = dict(await call.initial_metadata() or ()).get("x-meshmart-version", "(none)")
    return str(release), error


def ejections(mesh: MeshPlan, subset: str) -> int:
    """Outlier ejections so far of the caller's failover target for ``subset``."""
    caller = mesh.instance(CALLER)
    counters = envoy.stats(caller.admin_url, r"outlier_detection\.ejections_enforced_total$")
    return sum(
        value for name, value in counters.items()
        if f".{subset}.{SERVICE}." in name.replace("~", ".")
    )


@dataclass
class Load:
    """Callers that keep calling until stopped; every answer and failure is kept with the
    time its call started (routing is decided when a call starts).

    Steady, not saturating: each caller pauses 20 ms between calls (at most ~150 calls/s
    in all). The box's two cores also run the whole mesh, and a recommendation starved of
    CPU misses its own catalog budget (UNAVAILABLE; 1 s on the session mesh,
    tests/conftest.py) whatever the split does; these tests are about what the split, the
    routes and the failover do to calls."""

    storefront: Storefront
    workers: int = 3
    pause: float = 0.02
    answers: list[tuple[float, str]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _call_until_stopped(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.answers.append((started, await answered_by(self.storefront)))
            except grpc.aio.AioRpcError as error:
                self.failures.append((started, f"{error.code().name}: {error.details()}"))
            await asyncio.sleep(self.pause)

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._call_until_stopped()) for _ in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def since(self, moment: float) -> list[str]:
        return [version for started, version in self.answers if started > moment]

    async def answers_since(self, moment: float, count: int, what: str) -> None:
        await until(lambda: len(self.since(moment)) >= count, 60, what)


async def test_at_10_percent_a_tenth_of_1000_calls_reach_v2_and_each_answer_says_who(
    mesh: MeshPlan, storefront: Storefront
) -> None:
    await set_split(mesh, 10)
    calls = iter(range(1000))
    versions: Counter[str] = Counter()
    errors: list[tuple[str, str]] = []

    async def caller() -> None:
        for _ in calls:  # shared iterator: 1,000 calls in all, 2 at a time
            release, error = await release_of(storefront)
            versions[release] += 1
            if error:
                errors.append((release, error))

    await asyncio.gather(*(caller() for _ in range(2)))

    # Every call was answered by a release that named itself, and there are only the two.
    # (An error a release answered itself, e.g. its catalog budget missed on a starved
    # box, still counts for the split; a failure of the mesh would have no release.)
    assert set(versions) == {"v1", "v2"}, (versions, errors[:5])
    assert sum(versions.values()) == 1000
    assert len(errors) <= 10, errors[:10]
    # Envoy picks the weighted cluster at random per call: v2's count is binomial
    # (n=1000, p=0.1, standard deviation 9.5). 100 +- 43 is +-4.5 standard deviations:
    # a correct split fails this about once in 150,000 runs; a split that is off by 5
    # points (50 or 150 expected) is caught.
    assert 57 <= versions["v2"] <= 143, versions


async def test_the_version_header_picks_the_release(
    mesh: MeshPlan, storefront: Storefront
) -> None:
    await set_split(mesh, 50)
    for release in ("v1", "v2"):
        header = (("x-meshmart-version", release),)
        answers = [await answered_by(storefront, header) for _ in range(20)]
        assert answers == [release] * 20


async def test_both_releases_answer_not_found_for_a_user_the_user_service_does_not_know(
    mesh: MeshPlan, storefront: Storefront
) -> None:
    # Each release's GetUser crosses its own sidecar and user's intention: were it refused,
    # the release could not tell and would recommend (POPULAR) instead.
    unknown = recommendation_pb2.RecommendRequest(user_id="usr-canary-nobody", limit=3)
    for release in ("v1", "v2"):
        header = (("x-meshmart-version", release),)
        call = storefront.stub.Recommend(unknown, timeout=TIMEOUT, metadata=header)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert dict(await call.initial_metadata())["x-meshmart-version"] == release
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert raised.value.details() == "user usr-canary-nobody not found"


async def test_shifting_all_traffic_to_v2_and_back_under_load_loses_no_call(
    mesh: MeshPlan, storefront: Storefront
) -> None:
    await set_split(mesh, 10)
    async with Load(storefront) as load:
        await load.answers_since(time.monotonic(), 50, "answers at 10%")
        all_v2 = await set_split(mesh, 100, storefront)
        ejected_before = ejections(mesh, "v2")
        await load.answers_since(all_v2, 100, "answers at 100% v2")
        ejected = ejections(mesh, "v2") - ejected_before
        leaving_v2 = time.monotonic()
        all_v1 = await set_split(mesh, 0, storefront)
        await load.answers_since(all_v1, 100, "answers at 0% v2")
        await set_split(mesh, 10)

    assert load.failures == [], f"{len(load.failures)} of {len(load.answers)} calls failed"
    # Calls started once storefront's Envoy had the new split went where it said...
    during_all_v2 = Counter(v for started, v in load.answers if all_v2 < started < leaving_v2)
    if ejected == 0:
        assert set(during_all_v2) == {"v2"}, during_all_v2
    else:
        # ...unless outlier detection ejected a v2 instance (its answers kept failing, e.g.
        # catalog budgets missed on a starved box, and retries hid that from the caller):
        # then v2's failover to v1 takes part of its share while it is out, by design.
        assert during_all_v2["v2"] >= 0.6 * sum(during_all_v2.values()), during_all_v2
    assert set(load.since(all_v1)) <= {"v1", "v2"}
    back_to_v1 = [v for started, v in load.answers if started > all_v1][:100]
    assert set(back_to_v1) == {"v1"}, Counter(back_to_v1)


async def test_a_v2_instance_killed_mid_load_costs_no_call(
    mesh: MeshPlan, storefront: Storefront
) -> None:
    await set_split(mesh, 50)
    victim = mesh.instance("recommendation-3")
    async with Load(storefront) as load:
        await load.answers_since(time.monotonic(), 50, "answers before the kill")
        pid = pid_of(mesh, victim.instance_id)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        # supervisord starts it again; it registers and passes its check.
        await until(
            lambda: pid_of(mesh, victim.instance_id) not in (0, pid)
            and health_of(mesh, victim.instance_id) == "passing",
            60, "recommendation-3 restarted and passing",
        )
        await load.answers_since(time.monotonic(), 50, "answers after the restart")

    assert load.failures == [], f"{len(load.failures)} of {len(load.answers)} calls failed"
    # v2 kept answering (the other instance took the retries, then both again).
    assert "v2" in load.since(killed)


async def test_v2_stopped_entirely_mid_load_fails_over_to_v1_without_losing_a_call(
    mesh: MeshPlan, storefront: Storefront
) -> None:
    await set_split(mesh, 50)
    canaries = [i for i in mesh.instances() if i.service == SERVICE and i.version == "v2"]
    assert len(canaries) == 2
    supervisor = Supervisor(mesh)
    try:
        async with Load(storefront) as load:
            await load.answers_since(time.monotonic(), 50, "answers before the stop")
            # What a rollback or a crash of the release looks like to its callers: every
            # v2 process gets SIGTERM (NOT_SERVING, deregistration, drain) at once.
            await asyncio.gather(*(
                asyncio.to_thread(supervisor.stop, f"services:{inst.instance_id}")
                for inst in canaries
            ))
            stopped = time.monotonic()
            await load.answers_since(stopped, 100, "answers with v2 stopped")
    finally:
        for inst in canaries:
            supervisor.start(f"services:{inst.instance_id}")
        await until(
            lambda: all(health_of(mesh, i.instance_id) == "passing" for i in canaries),
            60, "the v2 instances back and passing",
        )

    assert load.failures == [], f"{len(load.failures)} of {len(load.answers)} calls failed"
    # Half the traffic is v2's by the split; with v2 gone the resolver's failover sends it
    # to v1.
    assert set(load.since(stopped)) == {"v1"}
