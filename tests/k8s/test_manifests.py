"""deploy/k8s/: current, and the topology's mesh, object by object (no server needed).

Every assertion compares the manifests with topology.toml and consul/config-entries/
through the mesh's own model (tools.mesh.topology, tools.mesh.edge, tools.mesh.nats),
so a service, an instance or an upstream added there shows up here. The committed
files are exactly the rendered objects (the first test), so what holds for the objects
holds for the files; tests/k8s/test_apiserver.py sends the files themselves to a real
API server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.kit.config import load_config, upstream_variable
from services.user.keys import JWKS_FILE, PRIVATE_KEY_FILE
from tools.compose.model import owns_database
from tools.k8s import __main__ as k8s_cli
from tools.k8s.crds import mesh_resources, to_entry
from tools.k8s.model import (
    DEPLOY_DIR,
    JWT_SECRET,
    MERGED_METRICS_PORT,
    NAMESPACE,
    SIDECAR_PUBLIC_PORT,
    K8sModel,
    Manifest,
    persistent_dirs,
    storage_mode,
)
from tools.mesh import control
from tools.mesh.edge.settings import SERVICE_NAME as EDGE
from tools.mesh.nats import SERVICE_NAME as NATS
from tools.mesh.operator import Operator
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT

WORKLOADS = {"Deployment", "StatefulSet"}
UPSTREAMS = "consul.hashicorp.com/connect-service-upstreams"


@pytest.fixture(scope="module")
def manifests(model: K8sModel) -> list[Manifest]:
    return model.manifests()


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m.kind in WORKLOADS]


def pod(workload: Manifest) -> dict[str, Any]:
    template: dict[str, Any] = workload.body["spec"]["template"]
    return template


def containers(manifests: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for workload in workloads(manifests):
        for container in pod(workload)["spec"]["containers"]:
            yield workload, container


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m.name: m for m in manifests if m.kind == kind}


def mesh_services(model: K8sModel) -> set[str]:
    """Every Consul service the cluster runs: topology.toml's, the edge, NATS."""
    return set(model.topology.services) | {EDGE, NATS}


# --- current ---------------------------------------------------------------------------
def test_the_committed_files_are_what_make_k8s_writes_now() -> None:
    files = k8s_cli.outputs()
    for path, text in files.items():
        current = path.read_text() if path.exists() else ""
        assert current == text, f"{path.relative_to(ROOT)} is stale: run make k8s"
    assert k8s_cli.leftovers(files) == [], "manifests nothing generates: run make k8s"


def test_check_names_a_stale_file_and_says_how_to_fix_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert k8s_cli.main(["check"]) == 0  # the committed files are current
    for path, text in k8s_cli.outputs(deploy_dir=tmp_path).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert k8s_cli.main(["check"], deploy_dir=tmp_path) == 0
    changed = sorted((tmp_path / "base").glob("*.deployment.yaml"))[0]
    changed.write_text(re.sub(r"replicas: (\d+)", lambda m: f"replicas: {int(m[1]) + 1}",
                              changed.read_text()))
    gone = tmp_path / "base" / "gone.deployment.yaml"
    gone.write_text("kind: Deployment\n")
    assert k8s_cli.main(["check"], deploy_dir=tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{changed.name} stale" in err or f"{changed.name}," in err
    assert "stale: run make k8s" in err
    assert "gone.deployment.yaml (no longer generated)" in err
    assert gone.exists()  # check never writes (nor removes)


# --- the topology, both ways -----------------------------------------------------------
def test_every_release_is_a_workload_with_its_instance_count_as_replicas(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    expected: dict[tuple[str, str], int] = {}
    for service in model.topology.services.values():
        own = model.topology.instances_of(service.name)
        expected[(service.name, service.version or model.versions.meshmart)] = len(own)
        if service.canary is not None:
            canary = model.topology.canary_instances_of(service.name)
            expected[(service.name, service.canary.version)] = len(canary)
    found = {}
    for workload in workloads(manifests):
        labels = pod(workload)["metadata"]["labels"]
        if labels["app"] in (EDGE, NATS):
            continue
        found[(labels["app"], labels["version"])] = workload.body["spec"]["replicas"]
    assert found == expected


def test_nothing_is_in_the_manifests_that_the_topology_lacks_and_the_reverse(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    services = mesh_services(model)
    assert {m.name for m in manifests if m.kind == "ServiceAccount"} == services
    assert {m.name for m in manifests if m.kind == "Service"} == services
    assert {pod(w)["metadata"]["labels"]["app"] for w in workloads(manifests)} == services
    for m in manifests:
        assert m.body["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        if m.kind == "Namespace" or m.name == "mesh-only":  # namespace-wide
            continue
        assert m.body["metadata"]["labels"]["app"] in services, m.path
    # The config entries: each names a service of the mesh, a global one, or one of the
    # operator's per-instance virtual services (payment-1: a redirect to that instance).
    virtual = set(Operator(MeshPlan(topology=model.topology)).instance_targets())
    for r in mesh_resources(ROOT, NAMESPACE):
        name = r.entry["Name"]
        assert name in services | virtual or name in ("*", "global"), r.path


def test_every_upstream_is_an_upstream_annotation_at_the_topologys_port(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    for release in model.all_releases():
        workload = next(w for w in workloads(manifests)
                        if pod(w)["metadata"]["labels"] == {
                            **release.selector, "app.kubernetes.io/part-of": "meshmart"})
        annotation = pod(workload)["metadata"]["annotations"].get(UPSTREAMS, "")
        listed = dict(item.split(":") for item in annotation.split(",") if item)
        want = {u: str(p) for u, p in release.first.upstream_ports.items()}
        if release.service.name in model.nats.settings.clients:
            want[NATS] = str(model.nats.client_port(release.first))
        assert listed == want, workload.path
        assert set(listed) - {NATS} == set(release.service.upstreams)
        env = {e["name"]: e.get("value") for e in pod(workload)["spec"]["containers"][0]["env"]}
        for upstream, port in want.items():
            assert env[upstream_variable(upstream)] == f"127.0.0.1:{port}"
    edge = of_kind(manifests, "Deployment")[EDGE]
    annotation = pod(edge)["metadata"]["annotations"][UPSTREAMS]
    assert {item.split(":")[0] for item in annotation.split(",")} == set(model.edge.callees)


def test_every_intention_of_the_call_graph_is_a_service_intentions_resource(
    model: K8sModel,
) -> None:
    allowed: set[tuple[str, str]] = set()
    default_deny = False
    for r in mesh_resources(ROOT, NAMESPACE):
        if r.kind != "ServiceIntentions":
            continue
        destination = r.resource["spec"]["destination"]["name"]
        for source in r.resource["spec"]["sources"]:
            if destination == "*" and source["name"] == "*":
                default_deny = source["action"] == "deny"
                continue
            allowed.add((source["name"], destination))
    edges = model.topology.edges() | control.edges(model.plan)  # + the edge's, NATS's
    assert default_deny
    assert allowed == edges


def test_every_config_entry_is_a_resource_that_maps_back_to_it(model: K8sModel) -> None:
    resources = mesh_resources(ROOT, NAMESPACE)
    assert len(resources) == len(list((ROOT / "consul" / "config-entries").glob("*/*.hcl")))
    for r in resources:
        assert r.resource["apiVersion"] == "consul.hashicorp.com/v1alpha1"
        assert to_entry(r.resource) == r.entry, r.path
    kinds = {r.kind for r in resources}
    assert kinds >= {"ProxyDefaults", "ServiceDefaults", "ServiceResolver", "ServiceRouter",
                     "ServiceSplitter", "ServiceIntentions"}


def test_every_pod_gets_a_kit_config_the_service_reads_back(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    for release in model.all_releases():
        workload = next(w for w in workloads(manifests) if w.name == release.workload)
        env = {e["name"]: e.get("value", "") for e in pod(workload)["spec"]["containers"][0]["env"]}
        assert "MESHMART_CONSUL_HTTP_ADDR" not in env  # consul-k8s registers the pod
        env["MESHMART_INSTANCE_ID"] = f"{release.workload}-0"  # the pod's name
        config = load_config(release.service.name, env)
        assert (config.host, config.port) == ("0.0.0.0", release.first.port)
        assert set(config.upstreams) == set(model.upstream_ports(release))


# --- what every pod must have ----------------------------------------------------------
def test_images_are_pinned_by_version(model: K8sModel, manifests: list[Manifest]) -> None:
    pinned = {model.versions.service_image, model.versions.edge_image,
              model.versions.nats_image, *(model.versions.go_image(s)
                                           for s in model.topology.services)}
    for workload, container in containers(manifests):
        image = container["image"]
        assert image in pinned, f"{workload.path}: {image}"
        assert re.search(r":v?\d+\.\d+\.\d+", image) and not image.endswith(":latest")


def test_containers_run_as_non_root_with_a_read_only_root_filesystem(
    manifests: list[Manifest],
) -> None:
    for workload, container in containers(manifests):
        pod_security = pod(workload)["spec"]["securityContext"]
        assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, workload.path
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        # What the processes write is a volume: their data and run dirs, /tmp.
        mounted = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounted or any("jetstream" in m["name"]
                                        for m in container["volumeMounts"]), workload.path


def test_every_workload_has_probes_and_resources(manifests: list[Manifest]) -> None:
    for workload, container in containers(manifests):
        app = pod(workload)["metadata"]["labels"]["app"]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            check = container[probe]
            if app in (EDGE, NATS):
                assert "httpGet" in check, f"{workload.path} {probe}"
            else:  # the official gRPC health service on the service's own port
                grpc_port = next(p["containerPort"] for p in container["ports"]
                                 if p["name"] == "grpc")
                assert check["grpc"] == {"port": grpc_port}, f"{workload.path} {probe}"
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, workload.path
        annotations = pod(workload)["metadata"]["annotations"]
        for sidecar in ("cpu-request", "cpu-limit", "memory-request", "memory-limit"):
            assert f"consul.hashicorp.com/sidecar-proxy-{sidecar}" in annotations


def test_every_pod_joins_the_mesh_under_its_service_account_and_is_scraped(
    manifests: list[Manifest],
) -> None:
    accounts = set(of_kind(manifests, "ServiceAccount"))
    for workload in workloads(manifests):
        template = pod(workload)
        app = template["metadata"]["labels"]["app"]
        assert template["spec"]["serviceAccountName"] == app
        assert app in accounts
        annotations = template["metadata"]["annotations"]
        assert annotations["consul.hashicorp.com/connect-inject"] == "true"
        assert annotations["consul.hashicorp.com/service-meta-version"] == (
            template["metadata"]["labels"]["version"])
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"].isdigit()


def test_replicated_releases_have_a_disruption_budget_and_a_spread(
    manifests: list[Manifest],
) -> None:
    budgets = of_kind(manifests, "PodDisruptionBudget")
    for workload in workloads(manifests):
        replicas = workload.body["spec"]["replicas"]
        spec = pod(workload)["spec"]
        if replicas == 1:
            assert workload.name not in budgets
            continue
        budget = budgets[workload.name]
        assert budget.body["spec"]["selector"] == workload.body["spec"]["selector"]
        assert budget.body["spec"]["maxUnavailable"] == 1
        app = pod(workload)["metadata"]["labels"]["app"]
        if storage_mode(app, replicas) == "shared":
            # One SQLite file: the replicas stay on its volume's node.
            affinity = spec["affinity"]["podAffinity"]
            term = affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]
            assert term["topologyKey"] == "kubernetes.io/hostname"
        else:
            keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
            assert "kubernetes.io/hostname" in keys


def test_state_is_a_claim_per_service_as_its_instance_count_allows(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    stateful = of_kind(manifests, "StatefulSet")
    deployments = of_kind(manifests, "Deployment")
    claims = of_kind(manifests, "PersistentVolumeClaim")
    for service in model.topology.services.values():
        dirs = persistent_dirs(service.name)
        assert ("data" in dirs) == owns_database(service.name)
        mode = storage_mode(service.name, service.instances)
        if mode == "statefulset":
            workload = stateful[service.name]
            assert workload.body["spec"]["replicas"] == 1
            claimed = workload.body["spec"]["volumeClaimTemplates"]
            assert {t["metadata"]["name"] for t in claimed} == set(dirs)
        elif mode == "shared":
            workload = deployments[service.name]
            assert {f"{service.name}-{label}" for label in dirs} <= set(claims)
        else:
            assert not dirs
            continue
        mounts = {m["name"]: m["mountPath"] for m in pod(workload)["spec"]["containers"][0]
                  ["volumeMounts"]}
        for label, directory in dirs.items():
            assert mounts[label] == directory


def test_nats_is_a_statefulset_with_its_jetstream_store_on_a_claim(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    nats = of_kind(manifests, "StatefulSet")[NATS]
    container = pod(nats)["spec"]["containers"][0]
    assert "--jetstream" in container["args"]
    store = container["args"][container["args"].index("--store_dir") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claim = mounts[store]
    assert claim in {t["metadata"]["name"] for t in nats.body["spec"]["volumeClaimTemplates"]}


def test_the_edge_is_a_deployment_a_load_balancer_and_its_config(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    service = of_kind(manifests, "Service")[EDGE]
    assert service.body["spec"]["type"] == "LoadBalancer"
    assert service.body["spec"]["ports"][0]["port"] == model.edge.settings.port
    config = of_kind(manifests, "ConfigMap")[EDGE]
    edge = of_kind(manifests, "Deployment")[EDGE]
    container = pod(edge)["spec"]["containers"][0]
    config_dir = container["command"][container["command"].index("-c") + 1].rsplit("/", 1)[0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(edge)["spec"]["volumes"]}
    assert volumes[mounts[config_dir]]["configMap"]["name"] == config.name
    envoy = config.body["data"]["edge.yaml"]
    # Every file the Envoy config reads is in the ConfigMap or the JWT Secret's JWKS.
    for referenced in re.findall(r'"(/var/lib/meshmart/run/[^"]+)"', envoy):
        directory, name = referenced.rsplit("/", 1)
        volume = volumes[mounts[directory]]
        if "configMap" in volume:
            assert name in config.body["data"] or name in config.body["binaryData"]
        else:
            assert volume["secret"]["secretName"] == JWT_SECRET
            assert [i["key"] for i in volume["secret"]["items"]] == [name]
    # It calls each public service at its sidecar's upstream listener, on loopback.
    for callee, port in model.edge.instance.upstream_ports.items():
        assert f'"port_value": {port}' in envoy or f"port_value: {port}" in envoy, callee


def test_the_jwt_keys_are_a_secret_generated_from_the_user_services_own_files(
    model: K8sModel,
) -> None:
    generator = model.kustomization()["secretGenerator"][0]
    assert generator["name"] == JWT_SECRET and generator["namespace"] == NAMESPACE
    assert (DEPLOY_DIR / ".gitignore").read_text().split() == ["keys/"]
    assert generator["files"] == [f"keys/{name}" for name in (PRIVATE_KEY_FILE, JWKS_FILE)]
    mounted = {pod(w)["metadata"]["labels"]["app"]: v["secret"]
               for w in workloads(model.manifests()) for v in pod(w)["spec"].get("volumes", [])
               if v.get("secret", {}).get("secretName") == JWT_SECRET}
    # The user service reads both files (services/user/keys.py), the edge only the JWKS.
    assert set(mounted) == {"user", EDGE}
    assert "items" not in mounted["user"]
    assert mounted[EDGE]["items"] == [{"key": JWKS_FILE, "path": JWKS_FILE}]


def test_the_kustomizations_list_every_file_and_transform_nothing(model: K8sModel) -> None:
    """`kubectl apply -k deploy/k8s` sends exactly the committed files (and the Secret):
    no kustomize transformer rewrites them, so what tests/k8s/test_apiserver.py applies
    file by file is what a user applies."""
    top = model.kustomization()
    assert set(top) == {"apiVersion", "kind", "resources", "secretGenerator"}
    assert top["resources"] == list(k8s_cli.GENERATED_DIRS)
    files = k8s_cli.outputs()
    for group in k8s_cli.GENERATED_DIRS:
        listed = files[DEPLOY_DIR / group / "kustomization.yaml"]
        names = sorted(p.name for p in files if p.parent == DEPLOY_DIR / group
                       and p.name != "kustomization.yaml")
        assert names and all(f'  - "{name}"' in listed for name in names), group
        assert listed.count("\n  - ") == len(names)


def test_other_pods_reach_a_service_only_through_its_sidecar(
    model: K8sModel, manifests: list[Manifest],
) -> None:
    """Each service's own port listens on the pod's address (for the kubelet's probe):
    the NetworkPolicies admit other pods only to the sidecar's mTLS listener, the merged
    metrics and the edge's public port."""
    policies = of_kind(manifests, "NetworkPolicy")
    everyone = policies["mesh-only"].body["spec"]
    assert everyone["podSelector"] == {} and everyone["policyTypes"] == ["Ingress"]
    open_to_all = {p["port"] for rule in everyone["ingress"] for p in rule["ports"]}
    assert open_to_all == {SIDECAR_PUBLIC_PORT, MERGED_METRICS_PORT}
    edge = policies[f"{EDGE}-public"].body["spec"]
    assert edge["podSelector"] == {"matchLabels": {"app": EDGE}}
    assert {p["port"] for rule in edge["ingress"] for p in rule["ports"]} == {
        model.edge.settings.port}
    for workload, container in containers(manifests):
        for port in container["ports"]:
            assert port["containerPort"] not in open_to_all, workload.path
