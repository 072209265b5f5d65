"""The version a mesh run registers everywhere (meta.version): the commit it runs from."""

from __future__ import annotations

import subprocess
from pathlib import Path


def source_version(root: Path) -> str:
    """The short commit of the checkout at ``root``, or "dev" outside a git checkout."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "dev"
    return sha or "dev"
