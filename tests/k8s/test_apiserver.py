"""deploy/k8s/ accepted by a real Kubernetes API server (kube-apiserver 1.37 on etcd).

Every Kubernetes-native manifest (deploy/k8s/base/, plus the JWT Secret its
kustomization generates) is sent as committed, with server-side apply and strict field
validation (an unknown or duplicated field is an error): first as a dry run, then for
real, then once more, which must change nothing. The API server validates each object
against its built-in schema (and its own rules: selectors matching templates, probe and
port shapes, quantities, names), so an accepted manifest is a valid and complete object
of Kubernetes 1.37. The consul-k8s kinds are registered with a permissive schema only so
that deploy/k8s/mesh/ applies too (their meaning is checked against Consul:
tests/k8s/test_consul_roundtrip.py). No controller, scheduler or kubelet runs: nothing
here proves that a pod starts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from services.user.keys import ensure_signing_key
from tests.k8s.servers import KubeApi
from tools.compose.model import _go_module_version
from tools.k8s.crds import API_VERSION, KINDS, mesh_resources
from tools.k8s.model import DEPLOY_DIR, NAMESPACE, K8sModel, Manifest
from tools.mesh.topology import ROOT

GROUP = API_VERSION.split("/")[0]
ESTABLISHED_TIMEOUT = 30.0


def plural(kind: str) -> str:
    lower = kind.lower()
    return lower if lower.endswith("s") else f"{lower}s"


def permissive_crd(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural(kind)}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural(kind), "singular": kind.lower(),
                      "listKind": f"{kind}List"},
            "versions": [{
                "name": API_VERSION.split("/")[1], "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }],
        },
    }


def established(kube: KubeApi, name: str) -> bool:
    answer = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = answer.json().get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def consul_kinds(kube: KubeApi) -> None:
    """The consul-k8s kinds, registered so that their resources can be applied."""
    names = []
    for kind in KINDS.values():
        crd = permissive_crd(kind)
        answer = kube.apply(crd, json.dumps(crd), dry_run=False)
        assert answer.status_code in (200, 201), answer.text
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + ESTABLISHED_TIMEOUT
    while not all(established(kube, name) for name in names):
        assert time.monotonic() < deadline, "the consul-k8s CRDs were not established"
        time.sleep(0.2)
    # The new group's discovery is served once established.
    kube.resources.clear()


@pytest.fixture(scope="module")
def namespace(kube: KubeApi, model: K8sModel) -> None:
    body = model.namespace().body
    assert kube.apply(body, json.dumps(body), dry_run=False).ok


def native_objects(model: K8sModel, keys_dir: Path) -> list[tuple[dict[str, Any], str]]:
    """(object, the text sent) for every Kubernetes-native manifest: the committed files
    of deploy/k8s/base/ and the Secret the kustomization generates."""
    manifests: dict[str, Manifest] = {m.path: m for m in model.manifests()}
    committed = {f"base/{p.name}" for p in (DEPLOY_DIR / "base").glob("*.yaml")
                 if p.name != "kustomization.yaml"}
    assert committed == set(manifests), "deploy/k8s/base/ is stale: run make k8s"
    ordered = sorted(manifests.values(), key=lambda m: m.kind != "Namespace")
    out = [(m.body, (DEPLOY_DIR / m.path).read_text()) for m in ordered]
    ensure_signing_key(keys_dir)  # what `python -m services.user.keys --run-dir` writes
    secret = model.jwt_secret(keys_dir)
    out.append((secret, json.dumps(secret)))
    return out


def mesh_objects() -> list[tuple[dict[str, Any], str]]:
    out = []
    for r in mesh_resources(ROOT, NAMESPACE):
        path = DEPLOY_DIR / "mesh" / f"{r.name}.{r.kind.lower()}.yaml"
        out.append((r.resource, path.read_text()))
    return out


def stored(answer: dict[str, Any]) -> dict[str, Any]:
    """An object as the API server stores it, less the bookkeeping of a write: its
    resourceVersion and the time of each manager's last apply. A no-op apply can still
    bump the resourceVersion of some kinds (kubernetes/kubernetes#124605: here the
    PersistentVolumeClaims), so "changes nothing" is judged on everything else,
    generation included."""
    metadata = {k: v for k, v in answer["metadata"].items() if k != "resourceVersion"}
    metadata["managedFields"] = [{k: v for k, v in field.items() if k != "time"}
                                 for field in metadata.get("managedFields", [])]
    return {**answer, "metadata": metadata}


def apply_all(kube: KubeApi, objects: list[tuple[dict[str, Any], str]],
              ) -> dict[str, dict[str, Any]]:
    """Dry run, then apply, each object; what the server stores for it."""
    versions = {}
    for body, text in objects:
        where = kube.object_path(body)
        dry = kube.apply(body, text, dry_run=True)
        assert dry.status_code in (200, 201), f"dry run {where}: {dry.text}"
        assert "Warning" not in dry.headers, f"{where}: {dry.headers['Warning']}"
        real = kube.apply(body, text, dry_run=False)
        assert real.status_code in (200, 201), f"apply {where}: {real.text}"
        versions[where] = stored(real.json())
    return versions


def test_every_manifest_is_accepted_by_a_dry_run_then_applied_and_reapplying_changes_nothing(
    kube: KubeApi, consul_kinds: None, model: K8sModel, tmp_path: Path,
) -> None:
    objects = [*native_objects(model, tmp_path / "keys"), *mesh_objects()]
    first = apply_all(kube, objects)
    assert len(first) == len(objects)
    for where in first:
        assert kube.get(where).status_code == 200, f"{where} is not stored"
    second = apply_all(kube, objects)
    changed = sorted(w for w in first if second[w] != first[w])
    assert changed == [], f"a second apply changed {changed}"
    # Where the server counts spec changes, it counted one: the creation.
    assert {v["metadata"].get("generation", 1) for v in second.values()} == {1}


def test_the_api_server_gives_back_each_consul_resource_as_rendered(
    kube: KubeApi, consul_kinds: None, namespace: None,
) -> None:
    """What the round trip with Consul converts (tools.k8s.crds' objects) is what the
    committed YAML says, read by the API server's own parser."""
    for body, text in mesh_objects():
        applied = kube.apply(body, text, dry_run=False)
        assert applied.status_code in (200, 201), applied.text
        stored = kube.get(kube.object_path(body)).json()
        assert stored["spec"] == body["spec"], kube.object_path(body)


def test_a_field_the_schema_lacks_is_refused(
    kube: KubeApi, model: K8sModel, namespace: None,
) -> None:
    """Strict validation is on: acceptance above is not the server dropping what it does
    not know."""
    deployment = next(m for m in model.manifests() if m.kind == "Deployment")
    text = (DEPLOY_DIR / deployment.path).read_text().replace("replicas:", "replicaz:", 1)
    refused = kube.apply(deployment.body, text, dry_run=True)
    # Server-side apply answers a field outside the schema with a Status naming it
    # ("field not declared in schema"; code 500 in 1.37, before any admission).
    assert not refused.ok
    assert ".spec.replicaz: field not declared in schema" in refused.json()["message"]


def test_the_server_is_the_kubernetes_release_tools_go_pins(kube: KubeApi) -> None:
    """The objects are judged by the release tools/go/kube-apiserver builds (its
    gitVersion is not stamped by a plain `go build`; major, minor and the emulated
    version are the release's own)."""
    pinned = _go_module_version("kube-apiserver", "k8s.io/kubernetes")
    major, minor = pinned.split(".")[:2]
    version = kube.get("/version").json()
    assert (version["major"], version["minor"]) == (major, minor)
    assert (version["emulationMajor"], version["emulationMinor"]) == (major, minor)
