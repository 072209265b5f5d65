"""Files a mesh run generates (configs, descriptor sets): written whole, and only when
their content changes, so a reader never sees half a file and an unchanged one keeps its
modification time."""

from __future__ import annotations

from pathlib import Path


def write_if_changed(path: Path, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
