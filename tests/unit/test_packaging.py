"""The project installs as pyproject.toml declares it, and setup plans only what is missing.

`make setup` installs the project editable with only its declared packages importable,
instead of putting the repository root on sys.path, where the consul/ folder (HCL only)
would shadow py-consul.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from tools.compose.requirements import closure, runtime_roots

ROOT = Path(__file__).resolve().parents[2]
# Root folders that hold files but are no Python package (consul/ must never be one).
NOT_PACKAGES = {"consul", "deploy", "docker", "docs", "envoy", "gen", "prometheus", "proto",
                "web"}


def python_folders() -> list[str]:
    return sorted(
        d.name for d in ROOT.iterdir()
        if d.is_dir() and not d.name.startswith(".") and d.name not in NOT_PACKAGES
        and any(d.rglob("*.py"))
    )


def test_every_python_folder_of_the_repo_imports_from_outside_it(tmp_path: Path) -> None:
    folders = python_folders()
    assert {"services", "tools", "bench", "harness", "tests"} <= set(folders)
    code = "import importlib, sys\n" + "".join(
        f"importlib.import_module({name!r})\n" for name in [*folders, "meshmart.catalog.v1"]
    ) + "import consul; print(consul.Consul.__module__)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    # py-consul's client, not the repository's consul/ folder
    assert done.stdout.strip() == "consul.std"


def test_the_repository_root_is_not_on_the_venvs_path(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.path))"],
                          cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60)
    assert str(ROOT) not in done.stdout.splitlines()


def test_setup_plans_a_go_tool_only_while_it_is_not_built(tmp_path: Path) -> None:
    env = {**os.environ, "MESHMART_CACHE": str(tmp_path)}

    def missing(*names: str) -> list[str]:
        done = subprocess.run([str(ROOT / "tools" / "bootstrap-go.sh"), "--missing", *names],
                              env=env, capture_output=True, text=True, check=True, timeout=60)
        return done.stdout.split()

    assert missing("consul", "grpcurl") == ["consul", "grpcurl"]
    version = subprocess.run([str(ROOT / "tools" / "bootstrap-go.sh"), "--version", "consul"],
                             env=env, capture_output=True, text=True, check=True,
                             timeout=60).stdout.strip()
    built = tmp_path / "bin" / f"consul-{version}"
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    assert missing("consul", "grpcurl") == ["grpcurl"]


def test_every_package_the_services_import_is_in_the_runtime_set() -> None:
    """The images install pyproject.toml's runtime set only (docker/requirements.txt): a
    service importing something outside it would fail in a container alone."""
    local = {"services", "meshmart", "tools", "__future__"}
    imported: set[str] = set()
    for file in (ROOT / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
    third_party = sorted(imported - local - set(sys.stdlib_module_names))
    provided = metadata.packages_distributions()
    runtime = closure(runtime_roots(ROOT / "pyproject.toml"))
    outside = {name: provided.get(name) for name in third_party
               if not {canonicalize_name(d) for d in provided.get(name, [])} & runtime}
    assert not outside, f"imported by services/ but not in [project] dependencies: {outside}"
