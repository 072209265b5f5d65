"""The simulated card network alone: Luhn, expiry and the test-card table."""

from __future__ import annotations

import datetime as dt

import pytest

from services.kit.errors import InvalidArgument
from services.payment.domain import authorize, luhn_valid, validate_card
from services.payment.model import Card, CardOutcome

TODAY = dt.date(2026, 6, 15)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4242424242424242", True),
        ("4000000000000002", True),
        ("4000000000009995", True),
        ("5555555555554444", True),
        ("4242424242424241", False),
        ("42424242424242a2", False),
        ("", False),
    ],
)
def test_luhn_checksum(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("number", "outcome"),
    [
        ("4242424242424242", CardOutcome(captured=True)),
        ("4000000000000002", CardOutcome(captured=False, decline_reason="card_declined")),
        ("4000000000009995", CardOutcome(captured=False, decline_reason="insufficient_funds")),
        ("378282246310005", CardOutcome(captured=True)),
    ],
)
def test_the_test_card_table(number: str, outcome: CardOutcome) -> None:
    card = Card(number=number, exp_month=1, exp_year=2030, cvc="123")

    validate_card(card, TODAY)
    assert authorize(card) == outcome


@pytest.mark.parametrize(
    ("card", "field"),
    [
        (Card("", 1, 2030, "123"), "card.number"),
        (Card("42424242", 1, 2030, "123"), "card.number"),
        (Card("4242424242424241", 1, 2030, "123"), "card.number"),
        (Card("4242424242424242", 0, 2030, "123"), "card.exp_month"),
        (Card("4242424242424242", 1, 30, "123"), "card.exp_year"),
        (Card("4242424242424242", 12, 2025, "123"), "card.exp_year"),
        (Card("4242424242424242", 5, 2026, "123"), "card.exp_month"),
        (Card("4242424242424242", 1, 2030, "12"), "card.cvc"),
        (Card("4242424242424242", 1, 2030, "12a"), "card.cvc"),
    ],
)
def test_invalid_cards_name_the_field(card: Card, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_card(card, TODAY)

    assert caught.value.field == field


def test_only_the_last_four_digits_are_kept_on_the_card_summary() -> None:
    assert Card("4242424242424242", 1, 2030, "123").last4 == "4242"
