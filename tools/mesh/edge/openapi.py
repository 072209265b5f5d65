"""The OpenAPI document the edge serves at /api/openapi.json.

It is gen/openapi/meshmart.swagger.json (protoc-gen-openapiv2, from the same protos
the transcoder serves), narrowed to what this edge really routes: the operations of
the services the topology runs, each marked with the bearer token it needs, and the
address it is served on. Nothing in it is written by hand.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.mesh.edge.api import Rpc
from tools.mesh.topology import ROOT

SWAGGER = ROOT / "gen" / "openapi" / "meshmart.swagger.json"


def edge_openapi(rpcs: Sequence[Rpc], host: str, source: Path = SWAGGER) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(json.loads(source.read_text()))
    by_operation = {f"{rpc.service}_{rpc.method}": rpc for rpc in rpcs}
    paths: dict[str, Any] = {}
    for path, operations in doc.get("paths", {}).items():
        kept = {}
        for verb, operation in operations.items():
            rpc = by_operation.get(operation.get("operationId", ""))
            if rpc is None:
                continue  # a service this topology does not run: the edge has no route
            if rpc.policy.jwt:
                operation["security"] = [{"bearer": []}]
                operation.setdefault("responses", {})["401"] = {
                    "description": "No valid access token (missing, forged or expired).",
                    "schema": {"$ref": "#/definitions/rpc.Status"},
                }
            operation.setdefault("responses", {})["429"] = {
                "description": "Rate limited at the edge; retry after `retry-after` seconds.",
                "schema": {"$ref": "#/definitions/rpc.Status"},
            }
            kept[verb] = operation
        if kept:
            paths[path] = kept
    doc["paths"] = paths
    used_tags = {t for ops in paths.values() for op in ops.values() for t in op.get("tags", [])}
    doc["tags"] = [t for t in doc.get("tags", []) if t.get("name") in used_tags]
    doc["host"] = host
    doc["basePath"] = "/"
    doc["schemes"] = ["http"]
    return doc
