"""Validators raise InvalidArgument naming the field, and normalise what they accept."""

from __future__ import annotations

import pytest

from services.kit import validate
from services.kit.errors import InvalidArgument


def _field_of(error: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return error.value.field


def test_require_and_non_empty() -> None:
    validate.require(True, "x", "never raised")
    with pytest.raises(InvalidArgument) as raised:
        validate.require(False, "card.cvc", "must be 3 or 4 digits")
    assert str(raised.value) == "card.cvc: must be 3 or 4 digits"
    assert validate.non_empty("  Ada ", "full_name") == "Ada"
    with pytest.raises(InvalidArgument, match="full_name: must not be empty"):
        validate.non_empty("   ", "full_name")


def test_ranges_and_lengths() -> None:
    assert validate.in_range(5, 1, 99, "quantity") == 5
    with pytest.raises(InvalidArgument) as raised:
        validate.in_range(100, 1, 99, "items[2].quantity")
    assert _field_of(raised) == "items[2].quantity"
    with pytest.raises(InvalidArgument, match="at most 3"):
        validate.max_length("abcd", 3, "code")
    with pytest.raises(InvalidArgument, match="greater than 0"):
        validate.positive(0, "amount.amount_minor")


def test_email_is_normalised() -> None:
    assert validate.email(" Ada@Example.COM ", "email") == "ada@example.com"
    for bad in ("", "ada", "ada@example", "a b@example.com", "a@@example.com"):
        with pytest.raises(InvalidArgument) as raised:
            validate.email(bad, "email")
        assert _field_of(raised) == "email"


def test_page_size_defaults_clamps_and_rejects_negative() -> None:
    assert validate.page_size(0) == validate.DEFAULT_PAGE_SIZE
    assert validate.page_size(7) == 7
    assert validate.page_size(10_000) == validate.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument, match="page_size"):
        validate.page_size(-1)


def test_identifiers_currency_and_choices() -> None:
    assert validate.identifier("sku-1001", "product_id") == "sku-1001"
    with pytest.raises(InvalidArgument, match="product_id"):
        validate.identifier("sku 1001", "product_id")
    assert validate.currency("EUR", "price.currency") == "EUR"
    with pytest.raises(InvalidArgument, match=r"price\.currency"):
        validate.currency("eur", "price.currency")
    with pytest.raises(InvalidArgument, match="must be one of EMAIL, SMS"):
        validate.one_of("FAX", {"EMAIL", "SMS"}, "channel")


def test_several_violations_in_one_error() -> None:
    error = InvalidArgument.of([("email", "must not be empty"), ("password", "too short")])
    assert error.violations == (("email", "must not be empty"), ("password", "too short"))
    assert str(error) == "email: must not be empty; password: too short"
