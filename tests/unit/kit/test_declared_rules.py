"""Every request rule a contract declares (meshmart.options.v1.rules) is stated in the
OpenAPI document `make proto` wrote, and enforced by validate.check. The rules come from
the descriptors of every generated module, not from a list in this file."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.kit import validate
from services.kit.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[3]
GENERATED = ROOT / "gen" / "python"
SWAGGER = ROOT / "gen" / "openapi" / "meshmart.swagger.json"


def _modules() -> list[Any]:
    return [
        importlib.import_module(
            ".".join(path.relative_to(GENERATED).with_suffix("").parts)
        )
        for path in sorted((GENERATED / "meshmart").rglob("*_pb2.py"))
    ]


MODULES = _modules()


def _messages(descriptor: Descriptor) -> Iterator[Descriptor]:
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _messages(nested)


def _declared() -> list[FieldDescriptor]:
    fields = []
    for module in MODULES:
        for top in module.DESCRIPTOR.message_types_by_name.values():
            for message in _messages(top):
                fields += [f for f in message.fields if validate.rules_of(f) is not None]
    return fields


DECLARED = _declared()


def test_the_contracts_declare_rules() -> None:
    # Guards the two tests below against passing on nothing.
    assert len(DECLARED) >= 40
    assert {validate.rules_of(f).format for f in DECLARED} >= set(validate.FORMATS)


# --- a valid value for each field, and one that breaks each rule ----------------------


def _new(descriptor: Descriptor) -> Message:
    return message_factory.GetMessageClass(descriptor)()


def _valid_scalar(field: FieldDescriptor, rules: validate.Rules | None) -> Any:
    if field.type == FieldDescriptor.TYPE_STRING:
        if rules is None:
            return ""
        samples = {
            validate.options_pb2.STRING_FORMAT_IDENTIFIER: "sku-1",
            validate.options_pb2.STRING_FORMAT_EMAIL: "ada@example.com",
            validate.options_pb2.STRING_FORMAT_CURRENCY: "EUR",
            validate.options_pb2.STRING_FORMAT_DATE: "2026-12-01",
            validate.options_pb2.STRING_FORMAT_PHONE: "+4915112345678",
        }
        return samples.get(rules.format, "x" * max(rules.min_len, 1))
    if rules is not None and rules.HasField("gte"):
        return rules.gte
    return 0


def _valid(descriptor: Descriptor) -> Message:
    """A message of ``descriptor`` that keeps every rule declared on it."""
    message = _new(descriptor)
    for field in descriptor.fields:
        rules = validate.rules_of(field)
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                continue
            if field.is_repeated:
                getattr(message, field.name).add().CopyFrom(_valid(field.message_type))
            elif (rules is not None and rules.required) or _has_rules(field.message_type):
                getattr(message, field.name).CopyFrom(_valid(field.message_type))
        elif field.is_repeated:
            getattr(message, field.name).append(_valid_scalar(field, rules))
        elif rules is not None:
            setattr(message, field.name, _valid_scalar(field, rules))
    return message


def _has_rules(descriptor: Descriptor) -> bool:
    return any(validate.rules_of(f) is not None for f in descriptor.fields)


def _breaking(field: FieldDescriptor, valid: Any) -> Iterator[tuple[str, Any]]:
    """(rule, a value of the field that breaks it) for each rule declared on it."""
    rules = validate.rules_of(field)
    assert rules is not None
    if field.is_repeated:
        if rules.required:
            yield "required", []
        if rules.max_items:
            yield "max_items", list(valid) * (rules.max_items + 1)
    if field.message_type is not None:
        if rules.required and not field.is_repeated:
            yield "required", None
        return
    def value(v: Any) -> Any:
        return [v] if field.is_repeated else v
    item = valid[0] if field.is_repeated else valid
    if rules.required:
        yield "required", value("   " if isinstance(item, str) else 0)
    if rules.min_len:
        yield "min_len", value("x" * (rules.min_len - 1))
    if rules.max_len:
        yield "max_len", value(item + "x" * (rules.max_len + 1 - len(item)))
    if rules.HasField("gte"):
        below = rules.gte - 1
        yield "gte", value(below - 1 if rules.ignore_zero and below == 0 else below)
    if rules.HasField("lte"):
        yield "lte", value(rules.lte + 1)
    if rules.format:
        yield "format", value("not valid!")


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    if value is None:
        message.ClearField(field.name)
    elif field.is_repeated:
        container = getattr(message, field.name)
        del container[:]
        if field.message_type is not None:
            for item in value:
                container.add().CopyFrom(item)
        else:
            container.extend(value)
    else:
        setattr(message, field.name, value)


@pytest.mark.parametrize("field", DECLARED, ids=lambda f: f.full_name)
def test_check_enforces_every_declared_rule(field: FieldDescriptor) -> None:
    valid = _valid(field.containing_type)
    validate.check(valid)  # what keeps every rule is accepted
    broken_rules = list(_breaking(field, getattr(valid, field.name)))
    assert broken_rules
    for rule, value in broken_rules:
        message = _new(field.containing_type)
        message.CopyFrom(valid)
        _set(message, field, value)
        with pytest.raises(InvalidArgument) as raised:
            validate.check(message)
        assert raised.value.field.split("[")[0] == field.name, (rule, value)
    rules = validate.rules_of(field)
    if rules is not None and rules.ignore_zero:
        message = _new(field.containing_type)
        message.CopyFrom(valid)
        _set(message, field, 0)
        validate.check(message)  # 0 is "not set": the default, accepted


@pytest.mark.parametrize("code", sorted(validate.FORMATS))
def test_each_formats_openapi_pattern_agrees_with_its_check(code: int) -> None:
    string_format = validate.FORMATS[code]
    good = {1: "sku-1001", 2: "ada@example.com", 3: "EUR", 4: "2026-12-01", 5: "+4915112345678"}
    string_format.check(good[code], "f", string_format.max_len)
    assert re.search(string_format.pattern, good[code])
    empty = ("",) if string_format.min_len else ()
    for bad in ("not valid!", "a b", "@", *empty):
        with pytest.raises(InvalidArgument):
            string_format.check(bad, "f", string_format.max_len)
        assert not re.search(string_format.pattern, bad)


# --- the OpenAPI document states them ------------------------------------------------


def _http_requests() -> list[tuple[str, Descriptor, str]]:
    """(operationId, request message, body) of every RPC with a REST face."""
    found = []
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if options.HasExtension(annotations_pb2.http):
                    body = options.Extensions[annotations_pb2.http].body
                    found.append((f"{service.name}_{method.name}", method.input_type, body))
    return found


def _stated(doc: dict[str, Any]) -> Iterator[tuple[FieldDescriptor, dict[str, Any], bool]]:
    """(field, where the document describes it, whether the document requires it) for
    every field of a REST request, nested message fields included."""
    operations = {
        op["operationId"]: op for ops in doc["paths"].values() for op in ops.values()
    }
    definitions = doc["definitions"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return definitions[ref.split("/")[-1]] if ref else schema

    def in_schema(schema: dict[str, Any], message: Descriptor) -> Iterator[Any]:
        schema = resolve(schema)
        for field in message.fields:
            prop = schema.get("properties", {}).get(field.json_name)
            if prop is None:
                continue
            yield field, prop, field.json_name in schema.get("required", [])
            if field.message_type is not None:
                yield from in_schema(prop.get("items", prop), field.message_type)

    for operation_id, request, body in _http_requests():
        operation = operations[operation_id]
        by_name = {p["name"]: p for p in operation["parameters"]}
        for field in request.fields:
            parameter = by_name.get(field.json_name)
            if parameter is not None:
                yield field, parameter, parameter.get("required", False)
        if "body" in by_name:
            schema = by_name["body"]["schema"]
            if body in ("*", ""):
                yield from in_schema(schema, request)
            else:
                yield from in_schema(schema, request.fields_by_name[body].message_type)


def test_the_openapi_document_states_every_rule_of_a_rest_request() -> None:
    doc = json.loads(SWAGGER.read_text())
    checked = 0
    for field, where, required in _stated(doc):
        rules = validate.rules_of(field)
        if rules is None:
            continue
        checked += 1
        name = field.full_name
        value = where.get("items", {}) if field.is_repeated else where
        if field.is_repeated:
            if rules.required:
                assert where.get("minItems") == 1 and required, name
            if rules.max_items:
                assert where.get("maxItems") == rules.max_items, name
        elif rules.required and not field.has_presence:
            assert required, name
        if rules.required and field.type == FieldDescriptor.TYPE_STRING:
            assert value.get("minLength", 0) >= 1 and value.get("pattern"), name
        if rules.min_len:
            assert value.get("minLength") == rules.min_len and required, name
        if rules.max_len:
            assert value.get("maxLength") == rules.max_len, name
        if rules.HasField("gte"):
            assert value.get("minimum") == rules.gte, name
        if rules.HasField("lte"):
            assert value.get("maximum") == rules.lte, name
        if rules.format:
            string_format = validate.FORMATS[rules.format]
            assert value.get("pattern") == string_format.pattern, name
            assert value.get("maxLength") == (rules.max_len or string_format.max_len), name
            assert required or field.has_presence, name
    # Every field of a REST request that declares rules was found in the document.
    rest_fields = {
        f.full_name
        for _, request, _ in _http_requests()
        for f in request.fields
        if validate.rules_of(f) is not None
    }
    assert checked >= len(rest_fields) > 20


def test_the_pool_knows_the_rules_option() -> None:
    # The option is a registered extension: rules come back typed, not as unknown bytes.
    pool = descriptor_pool.Default()
    assert pool.FindExtensionByName("meshmart.options.v1.rules").number == 50510
