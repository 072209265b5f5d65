"""What the benchmarks read from the machine they run on: a loopback address where the
ports they need are free, and a process's CPU time."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_loopback(*ports: int, first: int = 2) -> str:
    """The first 127.0.0.x (x >= ``first``) where every one of ``ports`` is free, so what
    a benchmark starts never meets another mesh (a test mesh, `make up`, another bench).
    Each benchmark starts its search elsewhere, so two of them rarely race for one."""
    for last in range(first, 250):
        address = f"127.0.0.{last}"
        if all(_free(address, port) for port in ports):
            return address
    raise RuntimeError(f"no loopback address from 127.0.0.{first} with ports {ports} free")


def _free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
