"""Fixtures of the edge tests: the real edge of the session's mesh (tests/conftest.py),
and REST clients and users made through it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.edge.client import EdgeClient
from tools.mesh.edge.mesh import Edge
from tools.mesh.plan import MeshPlan


@pytest.fixture(scope="session")
def edge(mesh: MeshPlan) -> Edge:
    edge = Edge(mesh)
    assert edge.runs, "the session mesh runs the whole topology, the edge included"
    return edge


@pytest.fixture
def api(edge: Edge) -> Iterator[EdgeClient]:
    session = requests.Session()
    session.trust_env = False  # loopback only: never an http_proxy from the environment
    with session:
        yield EdgeClient(edge.url, session)
