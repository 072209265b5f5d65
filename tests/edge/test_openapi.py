"""The OpenAPI document the edge serves, and schemathesis driving the real edge with it:
generated inputs for every operation, bounded in examples and time; no 5xx and every
response conforms to the document."""

from __future__ import annotations

from typing import Any

import pytest

from tests.edge.client import EdgeClient
from tools.mesh.edge.mesh import Edge

pytestmark = pytest.mark.mesh

# Per operation (about 25 operations): a couple of minutes at most on two shared cores.
MAX_EXAMPLES = 8


def test_the_openapi_document_is_served_and_lists_what_the_edge_routes(
    api: EdgeClient, edge: Edge
) -> None:
    response = api.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["swagger"] == "2.0" and doc["host"] == f"{edge.plan.address}:{edge.settings.port}"
    operations = {op["operationId"]: op for ops in doc["paths"].values() for op in ops.values()}
    assert set(operations) == {f"{r.service}_{r.method}" for r in edge.rpcs}
    assert "security" in operations["OrderService_PlaceOrder"]
    assert "security" not in operations["CatalogService_ListProducts"]


def test_generated_requests_get_no_5xx_and_conforming_responses(
    api: EdgeClient, edge: Edge
) -> None:
    # Imported here: a checkout whose venv lacks schemathesis fails this test, not the
    # collection of the whole suite.
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks
    from schemathesis.core.failures import FailureGroup

    # schemathesis' own pytest integration does not run under pytest 9, so its core API
    # drives hypothesis here: one bounded property per operation of the document.
    schema = schemathesis.openapi.from_url(f"{edge.url}/api/openapi.json")
    # Authenticated as a real user, so user-scoped operations get past the JWT check and
    # reach the services (which answer 403 for ids that are not this user's).
    user = api.new_user()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            response = case.call(headers=user.auth, timeout=15, session=api.session)
            try:
                case.validate_response(response, checks=[
                    checks.not_a_server_error, checks.response_schema_conformance])
            except (AssertionError, FailureGroup) as failure:  # report every operation's
                failures.append(f"{case.method} {case.formatted_path}: {failure}"[:600])

        call()
    assert not failures, "\n\n".join(failures[:8])
    assert operations == len(edge.rpcs)
