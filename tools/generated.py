"""Committed files that a generator derives (docker-compose.yml, deploy/k8s/...):
write them, or check that the committed ones are current, with one rule for both.

``sync(files, check=..., remedy="make compose")`` writes each changed file (or, with
``check``, only names it) and removes, or names, ``obsolete`` files no longer produced;
it returns the exit status: 1 when ``check`` found anything stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from tools.mesh.topology import ROOT


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sync(files: Mapping[Path, str], *, check: bool, remedy: str,
         obsolete: Iterable[Path] = ()) -> int:
    stale = []
    for path, text in files.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(shown(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            sys.stdout.write(f"wrote {shown(path)}\n")
    for path in obsolete:
        if check:
            stale.append(f"{shown(path)} (no longer generated)")
        else:
            path.unlink()
            sys.stdout.write(f"removed {shown(path)}\n")
    if stale:
        sys.stderr.write(f"{', '.join(stale)} stale: run {remedy}\n")
        return 1
    return 0
