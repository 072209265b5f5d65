"""The PostgreSQL of a test session, and the engine a test's stores run on.

``postgres_cluster`` (session): one cluster of the run's own (tools/postgres.py), made
with initdb in a temporary directory, listening on a free port of 127.0.0.1 (never the
machine's cluster or its port), started the first time a test asks for it and stopped
by its pid when the session ends, whatever happened (and killed with the run if pytest
itself is killed: PR_SET_PDEATHSIG).

``engine`` is parametrized: a test that takes it (or ``databases``) runs once on SQLite
and once on PostgreSQL. ``databases`` says where each of the test's services keeps its
state on that engine: a file in tmp_path, or a fresh database of the session cluster
owned by the service's own role (dropped after the test).

tests/conftest.py imports these fixtures, so every suite can use them.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.host import free_port
from services.kit.config import DATABASE_URL_VARIABLE
from tools.postgres import PostgresCluster, role_name

ENGINES = ("sqlite", "postgresql")
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    # Not under pytest's tmp dir: as root the cluster runs as the postgres user, which
    # cannot enter /tmp/pytest-of-root (0700).
    directory = Path(tempfile.mkdtemp(prefix="meshmart-pg-"))
    cluster = PostgresCluster(directory, port=free_port(), durable=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


class Databases:
    """Where the services of one test keep their state, on the test's engine."""

    def __init__(self, engine: str, tmp_path: Path, cluster: PostgresCluster | None) -> None:
        self.engine = engine
        self.tmp_path = tmp_path
        self._cluster = cluster
        self._urls: dict[str, str] = {}
        self._made: list[str] = []

    def target(self, service: str, file_name: str) -> Path | str:
        """What ``Database(...)`` opens for ``service``: the SQLite file ``file_name`` in
        tmp_path, or the URL of this test's database of ``service`` (the same on every
        call within the test, so two Database objects share it as two instances do)."""
        if self._cluster is None:
            return self.tmp_path / file_name
        if service not in self._urls:
            name = f"{role_name(service)}_t{next(_numbers)}"
            self._urls[service] = self._cluster.service_database(service, name).url
            self._made.append(name)
        return self._urls[service]

    def urls(self, *services: str) -> dict[str, str]:
        """service -> its database URL on PostgreSQL; empty on SQLite (the services then
        keep their files in the data dir they are given)."""
        if self._cluster is None:
            return {}
        return {service: str(self.target(service, "")) for service in services}

    def env(self, service: str, file_name: str) -> dict[str, str]:
        """The variables that give a service process this state (MESHMART_DATA_DIR is
        the test's tmp_path on both engines: a service may keep other files there)."""
        target = self.target(service, file_name)
        if isinstance(target, Path):
            return {"MESHMART_DATA_DIR": str(target.parent)}
        return {"MESHMART_DATA_DIR": str(self.tmp_path), DATABASE_URL_VARIABLE: target}

    def drop(self) -> None:
        if self._cluster is not None:
            for name in self._made:
                self._cluster.drop_database(name)
        self._made.clear()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgresql": the test runs once on each."""
    return str(request.param)


@pytest.fixture
def databases(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Databases]:
    cluster = request.getfixturevalue("postgres_cluster") if engine == "postgresql" else None
    found = Databases(engine, tmp_path, cluster)
    try:
        yield found
    finally:
        found.drop()
