"""The canary in the topology and the plan (pure data): recommendation v2 in Go runs as
recommendation-3/-4 beside v1, labelled v2, started from its binary; `make canary` writes
the splitter Consul needs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tools.mesh import control
from tools.mesh.canary import CanaryError, parse_percent, releases, splitter_entry
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import TopologyError, load_topology
from tools.mesh.version import source_version

BASE = """
[services.order]
port = 7150
upstreams = []

[services.recommendation]
port = 7180
instances = 2
upstreams = ["order"]
version = "v1"
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(BASE + extra)
    return path


def test_canary_instances_follow_the_services_own_with_their_release_and_language() -> None:
    topo = load_topology()
    own = topo.instances_of("recommendation")
    canaries = topo.canary_instances_of("recommendation")

    assert [(i.instance_id, i.port, i.version, i.language) for i in own] == [
        ("recommendation-1", 7180, "v1", "python"),
        ("recommendation-2", 7181, "v1", "python"),
    ]
    assert [(i.instance_id, i.port, i.version, i.language) for i in canaries] == [
        ("recommendation-3", 7182, "v2", "go"),
        ("recommendation-4", 7183, "v2", "go"),
    ]
    # The same derivation rules: own sidecar/admin ports and upstream listeners.
    assert canaries[0].sidecar_port == 21182
    assert canaries[0].upstream_target("order") == "127.0.0.1:30825"
    # Not every consumer runs canaries: instances() is the service's own.
    assert "recommendation-3" not in {i.instance_id for i in topo.instances()}
    assert topo.instance("recommendation-4").version == "v2"


def test_the_plan_starts_the_go_binary_and_registers_each_release(tmp_path: Path) -> None:
    plan = MeshPlan(topology=load_topology(), run_dir=tmp_path)
    by_name = {p.name: p for p in control.programs(plan)}

    go = by_name["recommendation-3"]
    assert go.command == [str(plan.bin / "recommendation-go")]
    assert go.env["MESHMART_SERVICE_VERSION"] == "v2"
    assert go.env["MESHMART_UPSTREAM_ORDER"] == "127.0.0.1:30825"
    assert "recommendation-3-sidecar" in by_name
    python = by_name["recommendation-1"]
    assert python.command[-2:] == ["-m", "services.recommendation"]
    assert python.env["MESHMART_SERVICE_VERSION"] == "v1"
    # Services without a release label register the commit, as before.
    assert by_name["catalog-1"].env["MESHMART_SERVICE_VERSION"] == source_version(plan.root)


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        ('canary = { version = "v1", language = "go" }', "differ from the service's version"),
        ('canary = { version = "v2", language = "rust" }', "language must be one of"),
        ('canary = { version = "v2", language = "go", instances = 9 }', "at most 10"),
    ],
)
def test_a_bad_canary_is_rejected_naming_it(tmp_path: Path, canary: str, message: str) -> None:
    with pytest.raises(TopologyError, match=r"services\.recommendation\.canary") as raised:
        load_topology(write(tmp_path, canary + "\n"))
    assert message in str(raised.value)


def test_make_canary_writes_a_splitter_of_the_two_subsets(tmp_path: Path) -> None:
    plan = MeshPlan(topology=load_topology(), run_dir=tmp_path)
    rel = releases(plan)

    assert (rel.service, rel.stable, rel.canary) == ("recommendation", "v1", "v2")
    assert splitter_entry(rel, Decimal("12.5")) == {
        "Kind": "service-splitter",
        "Name": "recommendation",
        "Splits": [
            {"Weight": 87.5, "ServiceSubset": "v1"},
            {"Weight": 12.5, "ServiceSubset": "v2"},
        ],
    }


@pytest.mark.parametrize("text", ["-1", "100.5", "ten", "12.345", "nan"])
def test_a_percentage_outside_0_to_100_is_refused(text: str) -> None:
    with pytest.raises(CanaryError, match="PCT"):
        parse_percent(text)


def test_the_committed_splitter_matches_the_subsets_of_the_resolver() -> None:
    root = Path(__file__).resolve().parents[3] / "consul" / "config-entries" / "recommendation"
    splitter = (root / "service-splitter.hcl").read_text()
    resolver = (root / "service-resolver.hcl").read_text()

    for subset in ("v1", "v2"):
        assert f'ServiceSubset = "{subset}"' in splitter
        assert f'"{subset}" = {{' in resolver
    assert "Weight        = 10" in splitter  # the canary's share tests/mesh restores
