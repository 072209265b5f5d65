"""Real servers for the Kubernetes tests: etcd + kube-apiserver (envtest's way), Consul.

kube-apiserver and etcd are what `make test-servers` builds from tools/go/ (test-only
profile), run on a free 127.0.0.x, as controller-runtime's envtest runs them: a
self-signed serving certificate the API server makes itself (--cert-dir), one static
token for a system:masters user, a service-account key pair made here. Consul is a
standalone `consul agent -dev` on its own free loopback address. Every process runs
in its own process group and is stopped, and its directory removed, by ``stop``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.host import free_loopback
from tools.mesh.topology import ROOT

BIN = ROOT / ".venv" / "bin"
ETCD_PORTS = (2379, 2380)
APISERVER_PORT = 6443
CONSUL_PORTS = (8300, 8301, 8302, 8500, 8502, 8600)
START_TIMEOUT = 120.0  # kube-apiserver installs its built-in objects first
TOKEN = "meshmart-test-token"


class ServerError(Exception):
    """A server did not start; the message carries the end of its log."""


@dataclass
class Processes:
    """Processes of one fixture, each in its own group, stopped in reverse order."""

    directory: Path
    started: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append((process, log))
        return process

    def tail(self, process: subprocess.Popen[bytes]) -> str:
        for candidate, log in self.started:
            if candidate is process:
                return "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        return ""

    def stop(self) -> None:
        for process, _ in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wait_until(check: Any, process: subprocess.Popen[bytes], processes: Processes,
               what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll ``check()`` until it is true; fail at once when the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{what} exited with {process.returncode}:\n"
                              f"{processes.tail(process)}")
        with contextlib.suppress(requests.RequestException):
            if check():
                return
        time.sleep(0.2)
    raise ServerError(f"{what} not ready after {timeout:.0f}s:\n{processes.tail(process)}")


# --- Kubernetes ------------------------------------------------------------------------
@dataclass
class KubeApi:
    """A running kube-apiserver: its URL, a session with the static token."""

    url: str
    session: requests.Session
    resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.url}{path}", params=params, timeout=30)

    def discover(self, api_version: str) -> None:
        """kind -> (resource, namespaced) for one group version (the API's discovery)."""
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        answer = self.get(path)
        answer.raise_for_status()
        for resource in answer.json()["resources"]:
            if "/" not in resource["name"]:
                self.resources[(api_version, resource["kind"])] = (
                    resource["name"], resource["namespaced"])

    def object_path(self, body: dict[str, Any]) -> str:
        api_version, kind = body["apiVersion"], body["kind"]
        if (api_version, kind) not in self.resources:
            self.discover(api_version)
        resource, namespaced = self.resources[(api_version, kind)]
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        name = body["metadata"]["name"]
        if namespaced:
            return f"{prefix}/namespaces/{body['metadata']['namespace']}/{resource}/{name}"
        return f"{prefix}/{resource}/{name}"

    def apply(self, body: dict[str, Any], text: str, *, dry_run: bool) -> requests.Response:
        """Server-side apply of ``text`` (YAML or JSON) with strict field validation: an
        unknown or duplicated field is an error, not a warning."""
        params = {"fieldManager": "meshmart-tests", "fieldValidation": "Strict",
                  "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return self.session.patch(
            f"{self.url}{self.object_path(body)}", params=params, data=text.encode(),
            headers={"Content-Type": "application/apply-patch+yaml"}, timeout=30,
        )


def _service_account_keys(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "sa.key"
    public = directory / "sa.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@contextlib.contextmanager
def kube_apiserver(directory: Path) -> Iterator[KubeApi]:
    """etcd and kube-apiserver on a free loopback address, stopped on exit."""
    for binary in ("etcd", "kube-apiserver"):
        if not (BIN / binary).exists():
            raise ServerError(f"{BIN / binary} is missing: run `make test-servers`")
    address = free_loopback(*ETCD_PORTS, APISERVER_PORT, first=160)
    processes = Processes(directory)
    try:
        etcd_url = f"http://{address}:{ETCD_PORTS[0]}"
        etcd = processes.start("etcd", [
            str(BIN / "etcd"), "--data-dir", str(directory / "etcd"),
            "--name", "meshmart-test",
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://{address}:{ETCD_PORTS[1]}",
            "--initial-advertise-peer-urls", f"http://{address}:{ETCD_PORTS[1]}",
            "--initial-cluster", f"meshmart-test=http://{address}:{ETCD_PORTS[1]}",
            # A throwaway store: no fsync (envtest does the same).
            "--unsafe-no-fsync",
        ])
        wait_until(lambda: requests.get(f"{etcd_url}/health", timeout=2).json()["health"]
                   == "true", etcd, processes, "etcd")
        private, public = _service_account_keys(directory)
        tokens = directory / "tokens.csv"
        tokens.write_text(f'{TOKEN},meshmart-admin,1,"system:masters"\n')
        url = f"https://{address}:{APISERVER_PORT}"
        apiserver = processes.start("kube-apiserver", [
            str(BIN / "kube-apiserver"),
            "--etcd-servers", etcd_url,
            "--bind-address", address, "--advertise-address", address,
            "--secure-port", str(APISERVER_PORT),
            # No --tls-cert-file: the server makes a self-signed certificate here.
            "--cert-dir", str(directory / "certs"),
            "--token-auth-file", str(tokens),
            "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(public),
            "--service-account-signing-key-file", str(private),
            # Addresses the API server only allocates (no traffic goes there).
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--allow-privileged=true",
            # The "kubernetes" Service's endpoint would be this loopback address, which the
            # reconciler refuses; nothing here calls the API through that Service.
            "--endpoint-reconciler-type=none",
        ])
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        # The certificate chain the API server made for itself is what the client trusts.
        chain = directory / "certs" / "apiserver.crt"
        session.verify = str(chain)
        # Else REQUESTS_CA_BUNDLE (or a proxy) from the caller's environment wins over
        # session.verify.
        session.trust_env = False
        wait_until(lambda: chain.exists()
                   and session.get(f"{url}/readyz", timeout=5).status_code == 200,
                   apiserver, processes, "kube-apiserver")
        yield KubeApi(url=url, session=session)
    finally:
        processes.stop()


# --- Consul ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Consul:
    http: str  # host:port of the HTTP API

    def write(self, path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "consul"), "config", "write", "-http-addr", self.http, str(path)],
            capture_output=True, text=True, timeout=30, check=False,
        )

    def read(self, kind: str, name: str) -> dict[str, Any]:
        answer = requests.get(f"http://{self.http}/v1/config/{kind}/{name}", timeout=10)
        answer.raise_for_status()
        entry: dict[str, Any] = answer.json()
        for bookkeeping in ("CreateIndex", "ModifyIndex"):
            entry.pop(bookkeeping, None)
        return entry


@contextlib.contextmanager
def consul_dev(directory: Path) -> Iterator[Consul]:
    """A standalone `consul agent -dev` (in-memory) on a free loopback address."""
    address = free_loopback(*CONSUL_PORTS, first=170)
    processes = Processes(directory)
    try:
        agent = processes.start("consul", [
            str(BIN / "consul"), "agent", "-dev", "-bind", address, "-client", address,
            "-log-level", "warn",
        ])
        http = f"{address}:{CONSUL_PORTS[3]}"
        wait_until(lambda: requests.get(f"http://{http}/v1/status/leader", timeout=2).json()
                   != "", agent, processes, "consul agent -dev")
        yield Consul(http=http)
    finally:
        processes.stop()


def as_json_file(entry: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(entry, indent=2) + "\n")
    return path
