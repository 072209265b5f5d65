"""`make proto`'s last step: writes the request rules the contracts declare into the
OpenAPI document protoc-gen-openapiv2 made (which knows nothing of our field options).

For every operation it finds the RPC's request message, and states each field's rules
(services/kit/validate.py ``openapi_keywords`` / ``openapi_required``, the same module
that enforces them) on its path or query parameter and in its body schema, nested
messages included.

    usage: python -m tools.openapi_rules <descriptor set> <swagger.json>   (rewritten in place)

Run with the freshly generated Python modules first on sys.path (gen-proto.sh does):
the rules are read from their descriptors.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

from services.kit import validate

Json = dict[str, Any]


def methods(protoset: Path) -> dict[str, MethodDescriptor]:
    """operationId ("CartService_AddItem") -> the RPC, for every service in the set."""
    files = descriptor_pb2.FileDescriptorSet.FromString(protoset.read_bytes())
    found: dict[str, MethodDescriptor] = {}
    for file in files.file:
        if not file.name.startswith("meshmart/") or not file.service:
            continue
        # The generated module registers the file (and the options' extension) in the
        # default pool, so the rules come back as typed options.
        importlib.import_module(file.name.removesuffix(".proto").replace("/", ".") + "_pb2")
        services = descriptor_pool.Default().FindFileByName(file.name).services_by_name
        for service in services.values():
            for method in service.methods:
                found[f"{service.name}_{method.name}"] = method
    return found


def add_rules(doc: Json, rpcs: dict[str, MethodDescriptor]) -> Json:
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            method = rpcs.get(operation.get("operationId", ""))
            if method is None:
                continue
            request = method.input_type
            body = method.GetOptions().Extensions[annotations_pb2.http].body
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "body":
                    _body(doc, parameter["schema"], request, body)
                else:
                    field = _field_at(request, parameter["name"])
                    if field is not None:
                        _state(parameter, validate.openapi_keywords(field))
                        if validate.openapi_required(field):
                            parameter["required"] = True
    return doc


def _body(doc: Json, schema: Json, request: Descriptor, body: str) -> None:
    if body in ("", "*"):
        _message(doc, schema, request, set())
        return
    field = request.fields_by_name.get(body)
    if field is not None and field.message_type is not None:
        _message(doc, schema, field.message_type, set())


def _message(doc: Json, schema: Json, message: Descriptor, seen: set[str]) -> None:
    """States the rules of ``message``'s fields in ``schema`` (its properties and
    required list), following $ref into the definitions of nested messages."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix("#/definitions/")
        if name in seen:
            return
        seen.add(name)
        schema = doc["definitions"][name]
    properties = schema.get("properties", {})
    for field in message.fields:
        key = field.json_name if field.json_name in properties else field.name
        prop = properties.get(key)
        if prop is None:
            continue  # bound to the path: stated on the path parameter
        _state(prop, validate.openapi_keywords(field))
        if validate.openapi_required(field) and key not in schema.setdefault("required", []):
            schema["required"].append(key)
        if field.message_type is not None:
            _message(doc, prop.get("items", prop), field.message_type, seen)
    if not schema.get("required"):
        schema.pop("required", None)


def _state(target: Json, keywords: Json) -> None:
    for key, value in keywords.items():
        if key == "items":
            target.setdefault("items", {}).update(value)
        else:
            target[key] = value


def _field_at(message: Descriptor, path: str) -> FieldDescriptor | None:
    """The field a parameter name ("pageSize", "amount.currency") stands for."""
    field: FieldDescriptor | None = None
    for part in path.split("."):
        if message is None:
            return None
        field = next((f for f in message.fields if part in (f.json_name, f.name)), None)
        if field is None:
            return None
        message = field.message_type
    return field


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    protoset, swagger = Path(argv[0]), Path(argv[1])
    doc = add_rules(json.loads(swagger.read_text()), methods(protoset))
    swagger.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
