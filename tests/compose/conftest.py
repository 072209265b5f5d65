"""docker-compose.yml in real containers, brought up once for tests/compose.

harness/compose.py ``project`` runs `make compose-up`'s code path under a project name of
its own (published ports on a free loopback address, the mesh network on a free subnet),
and tears it down after a failure too: `docker-compose down -v`, the podman service
stopped, and nothing of the project left (else the teardown fails).

Package scope: once per session for tests/compose, and torn down as soon as its last
test has run (tests/conftest.py orders the in-process phase, tests/compose included,
before the session mesh): the ~30 containers are not left running under the mesh tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from harness.compose import ComposeRun, project

PROJECT = "meshmart-test"


@pytest.fixture(scope="package")
def compose() -> Iterator[ComposeRun]:
    with project(PROJECT, out=sys.stdout) as run:
        yield run
