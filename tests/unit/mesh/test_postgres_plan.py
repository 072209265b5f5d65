"""What a mesh run on PostgreSQL hands each part (tools/mesh/postgres.py), and that a mesh
on SQLite gets none of it. The mesh itself: tests/mesh/test_postgres_mesh.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from services.kit.config import load_config
from services.kit.server import database_behind_sidecar
from tools.mesh import acl, control
from tools.mesh.plan import MeshPlan
from tools.mesh.postgres import Postgres
from tools.mesh.topology import load_topology


def plan_on(tmp_path: Path, database: str, **settings: object) -> MeshPlan:
    return MeshPlan(topology=load_topology(), run_dir=tmp_path, database=database,
                    **settings)  # type: ignore[arg-type]


def test_a_mesh_on_sqlite_has_no_database_server_services_or_urls(tmp_path: Path) -> None:
    plan = plan_on(tmp_path, "sqlite")
    names = {p.name for p in control.programs(plan)}
    assert "postgres" not in names and not any(n.endswith("-db-1-sidecar") for n in names)
    env = control.service_env(plan, plan.instance("payment-1"), "v")
    assert "MESHMART_DATABASE_URL" not in env and "MESHMART_UPSTREAM_PAYMENT_DB" not in env
    assert Postgres(plan).config_entries() == [] and Postgres(plan).edges() == set()
    assert Postgres(plan).state_of("payment", "payment.sqlite3") == (
        tmp_path / "data" / "payment.sqlite3")


def test_each_service_reaches_its_own_database_through_its_own_sidecar(tmp_path: Path) -> None:
    plan = plan_on(tmp_path, "postgresql")
    for instance_id in ("payment-1", "payment-2", "order-1"):
        inst = plan.instance(instance_id)
        env = control.service_env(plan, inst, "v")
        config = load_config(inst.service, env)
        listener = config.upstreams[f"{inst.service}-db"]
        url = urlsplit(config.database_url)
        assert url.netloc.rpartition("@")[2] == listener
        assert (url.username, url.path) == (inst.service, f"/{inst.service}")
        assert database_behind_sidecar(config)
    # Two instances of a service share one database, each through its own listener.
    assert (control.service_env(plan, plan.instance("payment-1"), "v")["MESHMART_DATABASE_URL"]
            != control.service_env(plan, plan.instance("payment-2"), "v")[
                "MESHMART_DATABASE_URL"])
    # A service without state (storefront) gets no database.
    assert "MESHMART_DATABASE_URL" not in control.service_env(
        plan, plan.instance("storefront-1"), "v")


def test_each_database_is_a_connect_service_whose_one_intention_is_its_own_service(
    tmp_path: Path,
) -> None:
    plan = plan_on(tmp_path, "postgresql")
    databases = Postgres(plan)
    intentions = {e["Name"]: e["Sources"] for e in databases.config_entries()
                  if e["Kind"] == "service-intentions"}
    assert set(intentions) == {f"{s}-db" for s in databases.services}
    for name, sources in intentions.items():
        assert [(s["Name"], s["Action"]) for s in sources] == [(name.removesuffix("-db"), "allow")]
    assert ("payment", "payment-db") in control.edges(plan)
    names = {p.name for p in control.programs(plan)}
    assert "postgres" in names and "payment-db-1-sidecar" in names
    # Every database registers and runs its sidecar as its own ACL identity.
    grants = {g.name: g.service_identity for g in acl.mesh_grants(plan)}
    assert grants["payment-db"] == "payment-db"
    # Sidecar ports do not collide with one another or with the services'.
    ports = [i.sidecar_port for i in databases.instances()] + [
        i.sidecar_port for i in plan.instances()]
    assert len(ports) == len(set(ports))


def test_the_run_keeps_one_password_per_role_readable_only_by_its_user(tmp_path: Path) -> None:
    plan = plan_on(tmp_path, "postgresql")
    first = Postgres(plan).passwords()
    assert Postgres(plan).passwords() == first
    assert (tmp_path / "postgres" / "roles.json").stat().st_mode & 0o077 == 0


def test_the_wrapper_gets_the_plans_own_services(tmp_path: Path) -> None:
    topology = load_topology()
    services = {k: v for k, v in topology.services.items() if k in ("catalog", "cart")}
    small = MeshPlan(topology=type(topology)(services=services, rules=topology.rules,
                                             source=topology.source),
                     run_dir=tmp_path, database="postgresql")
    server = next(p for p in control.programs(small) if p.name == "postgres")
    assert server.command[server.command.index("--services") + 1] == "catalog,cart"
    assert server.env["MESHMART_MESH_DATABASE"] == "postgresql"


def test_on_more_hosts_the_services_with_several_instances_keep_their_state_in_postgresql(
    tmp_path: Path,
) -> None:
    plan = plan_on(tmp_path, "sqlite", pods=True, hosts=3)
    databases = Postgres(plan)
    assert databases.services == ["catalog", "payment"]  # two instances each
    assert "MESHMART_DATABASE_URL" in control.service_env(plan, plan.instance("payment-2"), "v")
    assert "MESHMART_DATABASE_URL" not in control.service_env(plan, plan.instance("order-1"), "v")
    assert databases.state_of("order", "order.sqlite3") == tmp_path / "data" / "order.sqlite3"
    assert databases.state_of("payment", "payment.sqlite3") != tmp_path / "data" / "payment.sqlite3"
