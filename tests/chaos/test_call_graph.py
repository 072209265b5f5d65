"""A caller outside the allowed call graph, the `make demo` way: storefront may list
payments but only order may charge (tests/mesh/test_mesh.py holds the same rule for a
caller with no intention at all)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tools.chaos import scenarios
from tools.mesh.plan import MeshPlan

pytestmark = pytest.mark.mesh


async def test_a_charge_from_outside_the_call_graph_is_denied_and_counted_by_payment(
    mesh: MeshPlan, numbers: Callable[[str], None],
) -> None:
    r = await scenarios.caller_outside_the_call_graph(mesh)
    numbers(
        f"as storefront: ListPayments -> {r.codes['ListPayments']}, Charge -> "
        f"{r.codes['Charge']}; payment's sidecars counted {r.counted} denied"
    )

    assert r.codes == {"ListPayments": "OK", "Charge": "PERMISSION_DENIED"}
    # Refused by the callee's sidecar (its RBAC), not by payment's code.
    assert r.counted == 1
