"""The contract suite: every test takes ``implementation`` and runs once per
implementation of RecommendationService (Python v1, Go v2)."""

from __future__ import annotations

import pytest

from harness.recommendation import IMPLEMENTATIONS, Implementation, build_go_binary


@pytest.fixture(scope="session", autouse=True)
def go_binary() -> None:
    # Built from the current sources (a no-op when `make setup` already built them).
    build_go_binary()


@pytest.fixture(params=IMPLEMENTATIONS, ids=[i.name for i in IMPLEMENTATIONS])
def implementation(request: pytest.FixtureRequest) -> Implementation:
    impl: Implementation = request.param
    return impl
