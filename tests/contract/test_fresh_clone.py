"""recommendation v2 builds from a fresh clone with what `make setup` runs: the committed
go.mod/go.sum and gen/go are enough, the build lands in the cache keyed by the sources,
and a second run is a no-op."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from harness import ROOT


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
    )


def test_a_fresh_clone_builds_the_go_service_through_the_setup_step(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    cloned = subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert cloned.returncode == 0, cloned.stderr
    # The clone's own build cache (the shared one may already hold this very build).
    env = {**os.environ, "MESHMART_CACHE": str(tmp_path / "cache")}
    step = clone / "tools" / "build-go-services.sh"
    assert "tools/build-go-services.sh" in (clone / "tools" / "setup.sh").read_text()

    first = run([str(step)], clone, env)
    second = run([str(step)], clone, env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "building services/recommendation-go" in first.stdout
    binary = clone / ".venv" / "bin" / "recommendation-go"
    assert binary.resolve().parent == tmp_path / "cache" / "services"
    assert second.returncode == 0 and "building" not in second.stdout  # cached: a no-op
    # It runs: without settings it stops with v1's exit code and message.
    started = run([str(binary)], clone, {"PATH": os.environ["PATH"]})
    assert started.returncode == 2
    record = json.loads(started.stderr.splitlines()[-1])
    assert record["event"] == "config.invalid" and "MESHMART_PORT" in record["error"]
