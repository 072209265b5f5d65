"""PostgreSQL in the mesh (tools/mesh/postgres.py): a mesh run on it reaches each
service's database only through its own sidecar, as its own identity, and only its own.

A small mesh of its own (catalog and cart, the code path of `make up DB=postgresql`, in
pods where the session may make them, with Consul ACLs as topology.toml says): one
PostgreSQL server, a Connect service per database with protocol tcp and one intention,
and cart's test-only sidecar listener to catalog's database, which no intention allows.
One mesh for the module; its teardown checks that no process or namespace is left.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.host import free_mesh_address
from harness.mesh import running
from tools.mesh import envoy
from tools.mesh.http import get_json
from tools.mesh.plan import MeshPlan
from tools.mesh.pods import pods_unavailable
from tools.mesh.postgres import Postgres
from tools.mesh.topology import load_topology
from tools.postgres import server_binary


@pytest.fixture(scope="module")
def pg_mesh() -> Iterator[MeshPlan]:
    server_binary("postgres")  # fails saying the server is not installed
    topology = load_topology().only({"catalog": 1, "cart": 1})
    # Not under pytest's tmp dir: as root the cluster runs as the postgres user, which
    # cannot enter /tmp/pytest-of-root (0700); this one it may pass through (0711).
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-pgmesh-"))
    run_dir.chmod(0o711)
    plan = MeshPlan(
        topology=topology, address=free_mesh_address(topology), run_dir=run_dir,
        database="postgresql", extra_upstreams={"cart": ["catalog-db"]},
        pods=os.environ.get("MESHMART_TEST_PODS", "1") == "1" and not pods_unavailable(),
    )
    try:
        with running(plan, timeout=300, check_entries=False):
            yield plan
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def count(url: str, table: str) -> int:
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def test_each_database_is_a_connect_service_over_tcp_that_admits_only_its_service(
    pg_mesh: MeshPlan,
) -> None:
    token = pg_mesh.consul_token
    for service in ("catalog", "cart"):
        name = f"{service}-db"
        health = get_json(f"{pg_mesh.consul_url}/v1/health/service/{name}?passing=1",
                          token=token)
        assert [h["Service"]["ID"] for h in health] == [f"{name}-1"]
        defaults = get_json(f"{pg_mesh.consul_url}/v1/config/service-defaults/{name}",
                            token=token)
        assert defaults["Protocol"] == "tcp"
        intentions = get_json(f"{pg_mesh.consul_url}/v1/config/service-intentions/{name}",
                              token=token)
        assert [(s["Name"], s["Action"]) for s in intentions["Sources"]] == [(service, "allow")]


def test_a_service_reaches_its_own_database_through_its_sidecar(pg_mesh: MeshPlan) -> None:
    db = Postgres(pg_mesh)
    cart, catalog = pg_mesh.instance("cart-1"), pg_mesh.instance("catalog-1")
    cart_db = db.instance("cart")
    before = envoy.stats(cart_db.admin_url, "^tcp[.].*downstream_cx_total$")
    # The services came up on their databases through their sidecars: catalog seeded its
    # products there, cart made its table. As each of them, through its own listener:
    for inst, table in ((catalog, "products"), (cart, "cart_items")):
        listener = int(db.client_target(inst, inst.service).rpartition(":")[2])
        with pg_mesh.reach(inst, listener) as target:
            rows = count(db.url(inst.service, target), table)
        assert rows > 0 if table == "products" else rows >= 0
    after = envoy.stats(cart_db.admin_url, "^tcp[.].*downstream_cx_total$")
    # The connection crossed cart-db's sidecar (its public TCP proxy counted it).
    assert sum(after.values()) > sum(before.values()), (before, after)


def test_another_services_database_is_refused_at_the_intention(pg_mesh: MeshPlan) -> None:
    db = Postgres(pg_mesh)
    cart = pg_mesh.instance("cart-1")
    catalog_db = db.instance("catalog")
    denied = "^connect_authz[.]rbac[.]denied$|.*rbac[.]denied$"
    before = sum(envoy.stats(catalog_db.admin_url, denied).values())
    listener = int(db.client_target(cart, "catalog").rpartition(":")[2])
    # cart's sidecar holds a valid mesh certificate for "cart" and a listener to
    # catalog-db; even with catalog's own password the connection never gets a login.
    with pg_mesh.reach(cart, listener) as target, pytest.raises(psycopg.OperationalError):
        count(db.url("catalog", target), "products")
    after = sum(envoy.stats(catalog_db.admin_url, denied).values())
    assert after > before, "catalog-db's sidecar did not count an RBAC denial"
