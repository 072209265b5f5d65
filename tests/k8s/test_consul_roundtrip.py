"""The consul-k8s resources mean what the local mesh runs: a real Consul 1.14 agrees.

consul-k8s itself cannot be installed here (its module is refused by the module proxy),
so its controller's job is done by the documented mapping in reverse
(tools.k8s.crds.to_entry): each resource of deploy/k8s/mesh/ becomes the config entry it
stands for, `consul config write` (the agent of `make setup`, 1.14.11) must accept it,
and what Consul then holds must be what it holds for the HCL file in
consul/config-entries/ (the entry `make up` writes). The committed YAML is exactly these
resources (tests/k8s/test_manifests.py) and the API server gives them back unchanged
(tests/k8s/test_apiserver.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.k8s.servers import Consul, as_json_file
from tools.k8s.crds import mesh_resources, to_entry
from tools.k8s.model import NAMESPACE
from tools.mesh.topology import ROOT


def test_every_resource_is_accepted_by_consul_as_the_entry_of_its_hcl_file(
    consul: Consul, tmp_path: Path,
) -> None:
    resources = mesh_resources(ROOT, NAMESPACE)
    assert resources
    for r in resources:  # in tools.mesh.entries' order: defaults before routers...
        kind, name = r.entry["Kind"], r.entry["Name"]
        written = consul.write(r.path)
        assert written.returncode == 0, f"{r.path}: {written.stderr}"
        from_hcl = consul.read(kind, name)

        entry = to_entry(r.resource)
        assert entry == r.entry, f"{r.kind} {r.name} does not map back to {r.path}"
        converted = as_json_file(entry, tmp_path / f"{r.kind}-{r.name}.json")
        written = consul.write(converted)
        assert written.returncode == 0, f"{r.kind} {r.name}: {written.stderr}"
        assert consul.read(kind, name) == from_hcl, f"{r.kind} {r.name}"


def test_consul_refuses_a_resource_whose_field_is_misnamed(
    consul: Consul, tmp_path: Path,
) -> None:
    """The round trip can fail: a field consul-k8s does not know (here a typo) is refused,
    so the acceptance above is not Consul ignoring what it reads."""
    router = next(r for r in mesh_resources(ROOT, NAMESPACE) if r.kind == "ServiceRouter")
    resource = {**router.resource, "spec": {**router.resource["spec"]}}
    resource["spec"]["routez"] = resource["spec"].pop("routes")
    written = consul.write(as_json_file(to_entry(resource), tmp_path / "bad.json"))
    assert written.returncode != 0
    assert "Routez" in written.stderr
