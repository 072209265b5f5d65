"""The one block-style YAML writer of the generated files: docker-compose.yml, the k8s
manifests and the edge's Envoy config (envoy/edge.yaml).

Mappings, sequences, strings, ints, floats, bools. Every string is written
double-quoted as a JSON string (a valid YAML double-quoted scalar), so no value can be
read back as a number, a bool or a null by accident ("1.14.11", "no", "on"); keys are
written plain when they are simple words. Mapping order is kept as built: the model
decides what reads well. Deterministic, so a generated file changes only when its model
does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


class Reset:
    """Compose's ``!reset``: in an override file, drop what the file below sets there."""


RESET = Reset()


class Override:
    """Compose's ``!override``: in an override file, replace (not merge) what the file
    below sets there with ``value`` (a non-empty mapping or sequence)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _key(key: str) -> str:
    if _PLAIN_KEY.match(key) and key.lower() not in _RESERVED:
        return key
    return json.dumps(key)


def _scalar(value: Any) -> str:
    if isinstance(value, Reset):
        return "!reset null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML")


def _lines(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Override):
                out.append(f"{pad}{_key(key)}: !override")
                out.extend(_lines(item.value, indent + 1))
            elif isinstance(item, (Mapping, list, tuple)) and item:
                out.append(f"{pad}{_key(key)}:")
                out.extend(_lines(item, indent + 1))
            else:
                out.append(f"{pad}{_key(key)}: {_empty_or_scalar(item)}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if isinstance(item, (Mapping, list, tuple)) and item:
                first, *rest = _lines(item, indent + 1)
                out.append(f"{pad}- {first.lstrip()}")
                out.extend(rest)
            else:
                out.append(f"{pad}- {_empty_or_scalar(item)}")
    else:
        raise TypeError(f"top level must be a mapping or a sequence, got {value!r}")
    return out


def _empty_or_scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return _scalar(value)


def dump(document: Mapping[str, Any], header: str = "") -> str:
    """The document as YAML; top-level keys are separated by a blank line."""
    blocks = []
    for key, value in document.items():
        blocks.append("\n".join(_lines({key: value}, 0)))
    return header + "\n\n".join(blocks) + "\n"
