"""The mesh's Consul ACLs (tools/mesh/acl.py) against a real Consul 1.14.11 agent that
denies by default: what no token, a service's token, Prometheus's and the operator's
may do. The agent is this file's own (`consul agent -dev` with the ACL stanza, on a
free loopback address), stopped by pid at the end."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from harness.host import free_loopback
from tests.k8s.servers import BIN, CONSUL_PORTS, Processes, wait_until
from tools.mesh import acl
from tools.mesh.edge.settings import SERVICE_NAME as EDGE
from tools.mesh.nats import SERVICE_NAME as NATS
from tools.mesh.topology import load_topology

NODE = "meshmart-acl-test"


@dataclass
class AclConsul:
    url: str
    tokens: acl.Tokens
    management: str

    def call(self, method: str, path: str, token: str | None = None,
             body: Any = None) -> requests.Response:
        headers = {} if token is None else {"X-Consul-Token": token}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=10,
                                data=None if body is None else json.dumps(body))

    def token(self, name: str) -> str:
        return self.tokens.secrets[name]


def registration(name: str, port: int) -> dict[str, Any]:
    return {"Name": name, "ID": f"{name}-1", "Port": port,
            "Connect": {"SidecarService": {"Port": port + 14000}}}


@pytest.fixture(scope="module")
def consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclConsul]:
    directory = tmp_path_factory.mktemp("acl-consul")
    address = free_loopback(*CONSUL_PORTS, first=180)
    processes = Processes(directory)
    try:
        agent = processes.start("consul", [
            # -data-dir: the tokens the agent persists (enable_token_persistence) go
            # there, not into the working directory.
            str(BIN / "consul"), "agent", "-dev", "-data-dir", str(directory / "data"),
            "-node", NODE, "-bind", address,
            "-client", address, "-log-level", "warn", "-hcl", acl.AGENT_ACL_HCL,
        ])
        url = f"http://{address}:{CONSUL_PORTS[3]}"
        wait_until(lambda: requests.get(f"{url}/v1/status/leader", timeout=2).json() != "",
                   agent, processes, "consul agent -dev (ACLs)")
        management = acl.bootstrap(url, directory / "acl" / "bootstrap.token")
        wanted = acl.grants(load_topology(), connect_services=[EDGE, NATS], node=NODE)
        tokens = acl.apply(url, management, wanted, acl.Tokens(directory / "acl" / "tokens"))
        # What a mesh holds: its config entries, and the registered instances.
        server = AclConsul(url, tokens, management)
        for entry in ({"Kind": "service-defaults", "Name": "payment", "Protocol": "grpc"},
                      {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "grpc"}}):
            assert server.call("PUT", "/v1/config", management, entry).ok
        for name, port in (("payment", 7140), ("catalog", 7110)):
            answer = server.call("PUT", "/v1/agent/service/register", server.token(name),
                                 registration(name, port))
            assert answer.status_code == 200, answer.text
        yield server
    finally:
        processes.stop()


def test_every_service_of_the_topology_the_edge_and_nats_get_a_token_of_their_own(
    consul: AclConsul,
) -> None:
    wanted = {*load_topology().services, EDGE, NATS, "prometheus", "operator", "agent"}
    assert set(consul.tokens.secrets) == wanted
    assert len(set(consul.tokens.secrets.values())) == len(wanted)
    files = [consul.tokens.path(n) for n in wanted] + [consul.tokens.directory.parent
                                                       / "bootstrap.token"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_without_a_token_nothing_is_listed_and_nothing_may_be_read_or_written(
    consul: AclConsul,
) -> None:
    services = consul.call("GET", "/v1/catalog/services")
    assert services.status_code == 200 and services.json() == {}
    assert consul.call("GET", "/v1/catalog/nodes").json() == []
    assert consul.call("GET", "/v1/config/service-defaults/payment").status_code == 403
    assert consul.call("PUT", "/v1/agent/service/register", None,
                       registration("intruder", 7999)).status_code == 403
    assert consul.call("PUT", "/v1/connect/intentions/exact?source=intruder&destination=payment",
                       None, {"Action": "allow"}).status_code == 403
    assert consul.call("PUT", "/v1/config", None,
                       {"Kind": "service-defaults", "Name": "payment"}).status_code == 403


def test_catalogs_token_cannot_register_as_payment_nor_get_its_certificate(
    consul: AclConsul,
) -> None:
    token = consul.token("catalog")
    as_payment = consul.call("PUT", "/v1/agent/service/register", token,
                             registration("payment", 7141))
    assert as_payment.status_code == 403
    assert "service:write" in as_payment.text and '"payment"' in as_payment.text
    # A sidecar for payment needs payment's leaf certificate: refused the same way.
    leaf = consul.call("GET", "/v1/agent/connect/ca/leaf/payment", token)
    assert leaf.status_code == 403
    assert consul.call("GET", "/v1/agent/connect/ca/leaf/catalog", token).status_code == 200


def test_prometheus_token_discovers_targets_and_nothing_more(consul: AclConsul) -> None:
    token = consul.token("prometheus")
    services = consul.call("GET", "/v1/catalog/services", token).json()
    assert {"payment", "payment-sidecar-proxy", "catalog"} <= set(services)
    health = consul.call("GET", "/v1/health/service/payment", token)
    assert health.status_code == 200 and health.json()[0]["Service"]["ID"] == "payment-1"
    for method, path, body in (
        ("PUT", "/v1/agent/service/register", registration("payment", 7142)),
        ("GET", "/v1/agent/connect/ca/leaf/payment", None),
        ("PUT", "/v1/connect/intentions/exact?source=catalog&destination=payment",
         {"Action": "allow"}),
        ("GET", "/v1/kv/anything", None),
        ("GET", "/v1/acl/tokens", None),
    ):
        assert consul.call(method, path, token, body).status_code == 403, path


def test_the_operator_reads_everything_and_writes_nothing(consul: AclConsul) -> None:
    token = consul.token("operator")
    assert {"payment", "catalog"} <= set(consul.call("GET", "/v1/catalog/services", token).json())
    assert consul.call("GET", "/v1/config/service-defaults/payment", token).status_code == 200
    assert consul.call("GET", "/v1/connect/intentions", token).status_code == 200
    assert consul.call("PUT", "/v1/agent/service/register", token,
                       registration("payment", 7143)).status_code == 403
    assert consul.call("PUT", "/v1/connect/intentions/exact?source=catalog&destination=payment",
                       token, {"Action": "allow"}).status_code == 403


def test_the_agents_token_may_update_its_node_and_register_no_service(
    consul: AclConsul,
) -> None:
    token = consul.token("agent")
    node = consul.call("GET", f"/v1/catalog/node/{NODE}", token).json()["Node"]
    own = {"Node": NODE, "ID": node["ID"], "Address": node["Address"]}
    assert consul.call("PUT", "/v1/catalog/register", token, own).status_code == 200
    service = {**own, "Service": {"Service": "intruder", "Port": 1}}
    assert consul.call("PUT", "/v1/catalog/register", token, service).status_code == 403
