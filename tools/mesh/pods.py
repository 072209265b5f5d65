"""Pods: each instance of a mesh (its process and its sidecar) in its own network
namespace, joined to the others by a bridge, as a Kubernetes pod or a compose service.

One mechanism for every runner: `python -m tools.mesh up` with pods on (``MeshPlan.pods``,
`make up PODS=1`), the test mesh, and the compose wiring check (tools/compose/pods.py,
which puts the bridge in a namespace of its own instead of the host's).

A ``PodNetwork`` is named after the run's loopback address, so two meshes on one machine
(a developer's `make up` on 127.0.0.1, a test mesh on 127.0.0.2) never share a name or an
address: the mesh on 127.0.0.X gets the bridge ``mmXbr`` with the host side
``10.213.X.1/24`` and pods ``mmX-<instance>`` at 10.213.X.2, .3, ... in the plan's order
of instances. A pod keeps its namespace and its address for the whole run, so an
instance supervisord restarts comes back in the same pod at the same address.

Inside a pod the service binds the pod's own 127.0.0.1; its sidecar's public (mTLS)
listener and Prometheus listener bind the pod's address; its upstream listeners the
pod's loopback. What is shared (Consul, NATS, Prometheus, Zipkin, the edge) stays on the
host side: docs/design.md says why.

Linux and root only (CAP_NET_ADMIN): ``pods_unavailable`` says why pods cannot run here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/etc/netns")
FORWARDER = Path(__file__).with_name("forward.py")
SUBNET_BASE = ipaddress.IPv4Address("10.213.0.0")  # + (X << 8): the /24 of mesh 127.0.0.X


class PodError(Exception):
    """A namespace, veth or bridge could not be made; the message has ip's error."""


def pods_unavailable() -> str:
    """Why this process cannot make network namespaces ("" when it can)."""
    if not Path("/proc/self/ns/net").exists():
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return ""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise PodError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass
class PodNetwork:
    """The namespaces, veths and bridge of one run, named by ``prefix``.

    ``bridge_namespace``: None puts the bridge in the host's namespace with the host-side
    address ``gateway`` (the mesh: the host reaches every pod, and pods reach Consul and
    the other shared parts there); a name puts it in a namespace of its own, with no
    address (the compose check: nothing touches the host's network)."""

    prefix: str
    subnet: ipaddress.IPv4Network
    bridge_namespace: str | None = None
    hosts: dict[str, str] = field(default_factory=dict)  # pod -> address, once made
    made: list[str] = field(default_factory=list)  # namespaces made, in order

    @classmethod
    def for_loopback(cls, address: str) -> PodNetwork:
        """The pod network of the mesh on loopback ``address`` (127.0.0.X -> X)."""
        index = int(ipaddress.IPv4Address(address)) & 0xFF
        subnet = ipaddress.IPv4Network(f"{SUBNET_BASE + (index << 8)}/24")
        return cls(prefix=f"mm{index}", subnet=subnet)

    @property
    def gateway(self) -> str:
        """The host side's address on the bridge."""
        return str(self.subnet.network_address + 1)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def address_of(self, number: int) -> str:
        """The address of pod ``number`` (0-based): .2, .3, ..."""
        return str(self.subnet.network_address + 2 + number)

    def namespace(self, pod: str) -> str:
        return f"{self.prefix}-{pod}"

    def exec_prefix(self, pod: str) -> list[str]:
        """The command prefix running a program in ``pod`` (ip execs it: same pid)."""
        # Absolute: supervisord's PATH has no sbin.
        return [shutil.which("ip") or "ip", "netns", "exec", self.namespace(pod)]

    @contextlib.contextmanager
    def port_forward(self, pod: str, port: int, host: str = "127.0.0.1") -> Iterator[str]:
        """``host:<a free port>`` on the host, forwarded to ``port`` on ``pod``'s own
        loopback while the block runs (as `kubectl port-forward`): one process,
        tools/mesh/forward.py, accepting on a socket made here and dialling in the pod.
        The socket listens before the process starts, so the address takes connections
        at once; a connection the pod refuses is reset."""
        listener = socket.create_server((host, 0), backlog=128)
        try:
            forwarder = subprocess.Popen(
                [*self.exec_prefix(pod), sys.executable, str(FORWARDER),
                 str(listener.fileno()), str(port)],
                stdin=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(listener.fileno(),),
            )
            address = f"{host}:{listener.getsockname()[1]}"
        finally:
            listener.close()  # the forwarder holds it now: its end is the address's end
        try:
            yield address
        finally:
            forwarder.terminate()
            _, err = forwarder.communicate(timeout=10)
            if forwarder.returncode not in (0, -15):
                raise PodError(f"the port forward into {pod} to port {port} failed: "
                               f"{err.decode(errors='replace').strip()}")

    def _bridge_ip(self, *args: str) -> None:
        ns = () if self.bridge_namespace is None else ("-n", self.bridge_namespace)
        ip(*ns, *args)

    def create(self, pods: dict[str, str]) -> None:
        """Make the bridge and one namespace per pod (pod name -> its address). Removes
        what an earlier run of the same name left behind first (a killed `up`)."""
        self.destroy(list(pods))
        if self.bridge_namespace is not None:
            ip("netns", "add", self.bridge_namespace)
            self.made.append(self.bridge_namespace)
        self._bridge_ip("link", "add", self.bridge, "type", "bridge")
        if self.bridge_namespace is None:
            self._bridge_ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}",
                            "dev", self.bridge)
        self._bridge_ip("link", "set", self.bridge, "up")
        names = "127.0.0.1 localhost\n" + "".join(f"{a} {p}\n" for p, a in pods.items())
        for index, (pod, address) in enumerate(pods.items()):
            ns = self.namespace(pod)
            ip("netns", "add", ns)
            self.made.append(ns)
            outside = f"{self.prefix}v{index}"
            where = () if self.bridge_namespace is None else ("netns", self.bridge_namespace)
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", outside, *where)
            ip("-n", ns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            self._bridge_ip("link", "set", outside, "master", self.bridge)
            self._bridge_ip("link", "set", outside, "up")
            # Names resolve as Docker's DNS would (`ip netns exec` mounts this hosts file).
            (NETNS_DIR / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_DIR / ns / "hosts").write_text(names)
            self.hosts[pod] = address

    def destroy(self, pods: Sequence[str] = ()) -> None:
        """Remove the namespaces (their veths go with them) and the bridge; also those of
        ``pods`` an earlier run of this name left. Safe to call twice."""
        left = [self.namespace(p) for p in pods] + list(reversed(self.made))
        if self.bridge_namespace is not None:
            left.append(self.bridge_namespace)
        existing = set(ip("netns", "list", check=False).stdout.split())
        for ns in dict.fromkeys(left):
            if ns in existing:
                ip("netns", "del", ns, check=False)
            shutil.rmtree(NETNS_DIR / ns, ignore_errors=True)
        if self.bridge_namespace is None:
            ip("link", "del", self.bridge, check=False)
        self.made.clear()
        self.hosts.clear()
        if NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
            NETNS_DIR.rmdir()  # only when no other namespace has files there

    def leftovers(self, pods: Sequence[str]) -> list[str]:
        """Namespaces and links of this network that exist now (a test's cleanup check)."""
        existing = set(ip("netns", "list", check=False).stdout.split())
        names = [n for n in (self.namespace(p) for p in pods) if n in existing]
        bridge = ip("link", "show", self.bridge, check=False)
        if self.bridge_namespace is None and bridge.returncode == 0:
            names.append(self.bridge)
        return names
