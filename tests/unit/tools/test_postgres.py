"""tools/postgres.py: a cluster of the run's own starts wherever the checkout is.

As root the server runs as the ``postgres`` user, which cannot enter a checkout under
/root (0700); the cluster must start there all the same (`make up HOSTS=3` from such a
checkout once failed with initdb's "Permission denied", restarting forever).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.host import free_port
from tools.postgres import PostgresCluster


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory only we may enter (mkdtemp makes it 0700), like /root."""
    directory = Path(tempfile.mkdtemp(prefix="meshmart-private-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_cluster_under_a_directory_the_server_user_cannot_enter_starts(
    private_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(private_dir)  # as `make up` runs it: from inside the checkout
    cluster = PostgresCluster(
        private_dir / "checkout" / ".run" / "postgres", port=free_port(), durable=False
    )
    try:
        cluster.start()
        with cluster.superuser() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # A service logs in over TCP as its own role, to its own database.
        with psycopg.connect(cluster.service_database("payment").url) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == (
                "payment",
                "payment",
            )
        if os.geteuid() == 0:
            # Its files are where that user can reach them, and the run directory says where.
            assert not cluster.server_directory.is_relative_to(private_dir)
            assert (cluster.directory / "server").resolve() == cluster.server_directory
            assert (cluster.data / "PG_VERSION").is_file()
            # The same directory again finds the same cluster (make down, then make up).
            again = PostgresCluster(cluster.directory, port=cluster.port)
            assert again.data == cluster.data
    finally:
        cluster.stop()
        if cluster.server_directory != cluster.directory:
            shutil.rmtree(cluster.server_directory, ignore_errors=True)


def test_a_cluster_in_a_private_directory_of_its_own_keeps_its_files_there(
    private_dir: Path,
) -> None:
    """What harness/postgres.py does: the directory itself is 0700 and ours, but the
    server user reaches it once handed over, so nothing goes elsewhere (and removing the
    directory removes the whole cluster)."""
    cluster = PostgresCluster(private_dir, port=free_port(), durable=False)
    try:
        cluster.start()
        assert cluster.server_directory == private_dir
        assert (private_dir / "data" / "PG_VERSION").is_file()
    finally:
        cluster.stop()
