"""Request validation: the rules each contract declares, and the helpers they are made of.

Every rule that one field can state is declared once, in the contract, as a field option
(``[(meshmart.options.v1.rules) = {...}]``, proto/meshmart/options/v1/validate.proto).
:func:`check` enforces them: the kit's interceptor runs it on every request before the
servicer sees it, and raises InvalidArgument naming the first field that breaks one.
:func:`openapi_keywords` and :func:`openapi_required` state the same rules as OpenAPI
constraints; `make proto` (tools/openapi_rules.py) writes them into the document the edge
serves. A rule no field option can say (one field against another, a date's calendar, a
duplicate in a list) stays in the servicer, written with the helpers below.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Sized
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from meshmart.options.v1 import validate_pb2 as options_pb2

from services.kit.errors import InvalidArgument

T = TypeVar("T")
N = TypeVar("N", int, float)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

# Deliberately simple: one "@", no spaces, a dot in the domain. Deliverability is the
# mail server's question, not ours.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_E164 = re.compile(r"^(\+[1-9][0-9]{6,14})?$")


def require(condition: bool, field: str, description: str) -> None:
    """The general case: raise InvalidArgument(field, description) unless ``condition``."""
    if not condition:
        raise InvalidArgument(field, description)


def non_empty(value: str, field: str) -> str:
    """A required string; returns it stripped of surrounding whitespace."""
    stripped = value.strip()
    if not stripped:
        raise InvalidArgument(field, "must not be empty")
    return stripped


def non_empty_list(values: Collection[T], field: str) -> Collection[T]:
    if len(values) == 0:
        raise InvalidArgument(field, "must contain at least one item")
    return values


def max_length(value: Sized, limit: int, field: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(field, f"must be at most {limit} long, got {len(value)}")


def in_range(value: N, lo: N, hi: N, field: str) -> N:
    """``lo <= value <= hi`` (inclusive both ends)."""
    if not lo <= value <= hi:
        raise InvalidArgument(field, f"must be between {lo} and {hi}, got {value}")
    return value


def positive(value: N, field: str) -> N:
    if not value > 0:
        raise InvalidArgument(field, f"must be greater than 0, got {value}")
    return value


def non_negative(value: N, field: str) -> N:
    if not value >= 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    return value


def one_of(value: T, allowed: Collection[T], field: str) -> T:
    if value not in allowed:
        choices = ", ".join(sorted(str(a) for a in allowed))
        raise InvalidArgument(field, f"must be one of {choices}, got {value!r}")
    return value


def email(value: str, field: str) -> str:
    """A plausible e-mail address; returns it stripped and lower-cased."""
    normalised = value.strip().lower()
    if not normalised:
        raise InvalidArgument(field, "must not be empty")
    if len(normalised) > 254 or not _EMAIL.match(normalised):
        raise InvalidArgument(field, "must be an e-mail address like name@example.com")
    return normalised


def identifier(value: str, field: str, *, limit: int = 128) -> str:
    """An opaque id (product_id, order_id, idempotency key): no spaces, bounded length."""
    if not value:
        raise InvalidArgument(field, "must not be empty")
    if len(value) > limit or not _ID.match(value):
        raise InvalidArgument(
            field, f"must be 1-{limit} characters of letters, digits and _ . : - "
        )
    return value


def currency(value: str, field: str) -> str:
    """An ISO 4217 code such as "EUR"."""
    if not _CURRENCY.match(value):
        raise InvalidArgument(field, f"must be a 3-letter ISO 4217 code like EUR, got {value!r}")
    return value


def date(value: str, field: str) -> dt.date:
    """A calendar date YYYY-MM-DD."""
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(field, f"must be a date YYYY-MM-DD, got {value!r}") from None


def phone(value: str, field: str) -> str:
    """An E.164 phone number, or "" (no number); returns it stripped."""
    stripped = value.strip()
    if not _E164.match(stripped):
        raise InvalidArgument(
            field, 'must be in E.164 form like "+4915112345678", or "" to clear it'
        )
    return stripped


def page_size(
    value: int,
    field: str = "page_size",
    *,
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
) -> int:
    """The page size to use: 0 (unset in proto3) means ``default``; larger than
    ``maximum`` is clamped, as AIP-158 recommends; negative is an error."""
    if value < 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    if value == 0:
        return default
    return min(value, maximum)


# --- the rules declared in the contracts -----------------------------------------------

Rules = options_pb2.FieldRules


@dataclass(frozen=True)
class StringFormat:
    """One StringFormat of the contracts: its check and the same rule as OpenAPI states
    it (pattern, minLength, maxLength)."""

    check: Callable[[str, str, int], object]  # (value, field, max_len) -> raises or not
    pattern: str
    max_len: int
    min_len: int = 1  # 0: "" is a valid value of the format


FORMATS: dict[int, StringFormat] = {
    options_pb2.STRING_FORMAT_IDENTIFIER: StringFormat(
        lambda value, field, limit: identifier(value, field, limit=limit), _ID.pattern, 128
    ),
    options_pb2.STRING_FORMAT_EMAIL: StringFormat(
        lambda value, field, _limit: email(value, field), _EMAIL.pattern, 254
    ),
    options_pb2.STRING_FORMAT_CURRENCY: StringFormat(
        lambda value, field, _limit: currency(value, field), _CURRENCY.pattern, 3
    ),
    options_pb2.STRING_FORMAT_DATE: StringFormat(
        lambda value, field, _limit: date(value, field), _DATE.pattern, 10
    ),
    options_pb2.STRING_FORMAT_PHONE: StringFormat(
        lambda value, field, _limit: phone(value, field), _E164.pattern, 16, min_len=0
    ),
}

_STRING_TYPES = (FieldDescriptor.TYPE_STRING,)
_INTEGER_TYPES = (
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
)

# (message, prefix of the field path) -> None, or raise InvalidArgument
_Check = Callable[[Any, str], None]


def rules_of(field: FieldDescriptor) -> Rules | None:
    """The rules ``field`` declares, or None."""
    options = field.GetOptions()
    if not options.HasExtension(options_pb2.rules):
        return None
    return options.Extensions[options_pb2.rules]


def check(message: Message) -> None:
    """Raise InvalidArgument for the first declared rule ``message`` breaks (fields in
    declaration order, nested messages depth first)."""
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]
    for field_check in _checks(descriptor):
        field_check(message, "")


_CHECKS: dict[Descriptor, tuple[_Check, ...]] = {}


def _checks(descriptor: Descriptor) -> tuple[_Check, ...]:
    """The checks of ``descriptor``'s fields, built once per message type."""
    cached = _CHECKS.get(descriptor)
    if cached is not None:
        return cached
    _CHECKS[descriptor] = ()  # a message that contains itself: no rules through the cycle
    checks = tuple(c for c in map(_field_check, descriptor.fields) if c is not None)
    _CHECKS[descriptor] = checks
    return checks


def _field_check(field: FieldDescriptor) -> _Check | None:
    rules = rules_of(field)
    name = field.name
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return None  # no rules on maps
    if field.message_type is not None:
        if field.is_repeated:
            return _repeated_check(field, rules, _message_check(field))
        nested = _message_check(field)
        required = rules is not None and rules.required
        if nested is None and not required:
            return None

        def message_field(message: Any, prefix: str) -> None:
            if not message.HasField(name):
                if required:
                    raise InvalidArgument(prefix + name, "is required")
                return  # a message that is not there has no fields to check
            if nested is not None:
                nested(getattr(message, name), prefix + name)

        return message_field
    if rules is None:
        return None
    value_check = _value_check(field, rules)
    if field.is_repeated:
        return _repeated_check(field, rules, value_check)
    if value_check is None:
        return None
    present: Callable[[Any], bool] | None = None
    if field.has_presence:  # proto3 `optional`: the rules apply when it is set
        present = lambda message: message.HasField(name)  # noqa: E731

    def scalar_field(message: Any, prefix: str) -> None:
        if present is None or present(message):
            value_check(getattr(message, name), prefix + name)

    return scalar_field


def _message_check(field: FieldDescriptor) -> Callable[[Any, str], None] | None:
    """The checks of a message-typed field's own fields, or None if it declares none."""
    assert field.message_type is not None
    checks = _checks(field.message_type)
    if not checks:
        return None

    def nested(value: Any, path: str) -> None:
        for field_check in checks:
            field_check(value, path + ".")

    return nested


def _repeated_check(
    field: FieldDescriptor, rules: Rules | None, item: Callable[[Any, str], None] | None
) -> _Check | None:
    required = rules is not None and rules.required
    limit = rules.max_items if rules is not None else 0
    if not required and not limit and item is None:
        return None
    name = field.name

    def repeated_field(message: Any, prefix: str) -> None:
        values = getattr(message, name)
        path = prefix + name
        if required:
            non_empty_list(values, path)
        if limit:
            max_length(values, limit, path)
        if item is not None:
            for index, value in enumerate(values):
                item(value, f"{path}[{index}]")

    return repeated_field


def _value_check(field: FieldDescriptor, rules: Rules) -> Callable[[Any, str], None] | None:
    """The check of one value (a scalar field, or one item of a repeated one)."""
    if field.type in _STRING_TYPES:
        return _string_check(rules)
    if field.type in _INTEGER_TYPES:
        return _integer_check(rules)
    return None


def _string_check(rules: Rules) -> Callable[[Any, str], None]:
    string_format = FORMATS.get(rules.format)
    limit = rules.max_len or (string_format.max_len if string_format else 0)
    ignore_zero = rules.ignore_zero
    required = rules.required
    least = rules.min_len

    def string_value(value: str, path: str) -> None:
        if ignore_zero and value == "":
            return
        if string_format is not None:
            string_format.check(value, path, limit)
        if required:
            non_empty(value, path)
        if least and limit and not least <= len(value) <= limit:
            raise InvalidArgument(path, f"must be {least} to {limit} characters long")
        if least and len(value) < least:
            raise InvalidArgument(
                path, "must not be empty" if least == 1 else f"must be at least {least} long"
            )
        if limit:
            max_length(value, limit, path)

    return string_value


def _integer_check(rules: Rules) -> Callable[[Any, str], None]:
    lo = rules.gte if rules.HasField("gte") else None
    hi = rules.lte if rules.HasField("lte") else None
    ignore_zero = rules.ignore_zero

    def integer_value(value: int, path: str) -> None:
        if ignore_zero and value == 0:
            return
        if lo is not None and hi is not None:
            in_range(value, lo, hi, path)
        elif lo == 0:
            non_negative(value, path)
        elif lo is not None and value < lo:
            raise InvalidArgument(path, f"must be at least {lo}, got {value}")
        elif hi is not None and value > hi:
            raise InvalidArgument(path, f"must be at most {hi}, got {value}")

    return integer_value


# --- the same rules as OpenAPI (Swagger 2) states them ---------------------------------


def openapi_keywords(field: FieldDescriptor) -> dict[str, Any]:
    """The Swagger 2 keywords that state ``field``'s declared rules (for a repeated field,
    the list's own, with the items' under "items"); {} when it declares none."""
    rules = rules_of(field)
    if rules is None:
        return {}
    value: dict[str, Any] = {}
    if field.type in _STRING_TYPES:
        string_format = FORMATS.get(rules.format)
        if string_format is not None:
            value["pattern"] = string_format.pattern
        elif rules.required:
            value["pattern"] = r"\S"  # not blank: non_empty strips before it looks
        least = max(
            rules.min_len,
            1 if rules.required else 0,
            string_format.min_len if string_format else 0,
        )
        if least and not rules.ignore_zero:
            value["minLength"] = least
        limit = rules.max_len or (string_format.max_len if string_format else 0)
        if limit:
            value["maxLength"] = limit
    elif field.type in _INTEGER_TYPES:
        # With ignore_zero, 0 (the default) is accepted too; the document states the
        # stricter rule, which every value a client sends by it passes.
        if rules.HasField("gte"):
            value["minimum"] = rules.gte
        if rules.HasField("lte"):
            value["maximum"] = rules.lte
    if not field.is_repeated:
        return value
    keywords: dict[str, Any] = {}
    if rules.required:
        keywords["minItems"] = 1
    if rules.max_items:
        keywords["maxItems"] = rules.max_items
    if value:
        keywords["items"] = value
    return keywords


def openapi_required(field: FieldDescriptor) -> bool:
    """Whether a request must carry ``field``: leaving it out (its default value) breaks
    one of the rules declared on it."""
    field_check = _field_check(field)
    if field_check is None:
        return False
    try:
        assert field.containing_type is not None
        field_check(_default_message(field.containing_type), "")
    except InvalidArgument:
        return True
    return False


def _default_message(descriptor: Descriptor) -> Message:
    return message_factory.GetMessageClass(descriptor)()
