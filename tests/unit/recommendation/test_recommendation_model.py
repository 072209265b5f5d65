"""The co-occurrence model alone: what counts as bought together, and the ranking."""

from __future__ import annotations

from services.recommendation.model import CoOccurrenceModel, PastOrder, merge_unique


def order(user_id: str, *lines: tuple[str, int]) -> PastOrder:
    return PastOrder(user_id=user_id, quantities=tuple(lines))


def test_products_ordered_together_are_recommended_without_what_the_user_bought() -> None:
    model = CoOccurrenceModel(
        [
            order("ann", ("beans", 1), ("grinder", 1)),
            order("bob", ("beans", 1), ("filter", 2)),
            order("bob", ("beans", 1), ("filter", 1), ("grinder", 1)),
            order("cy", ("beans", 1)),
        ]
    )

    # cy bought beans; filter shares 2 orders with beans, grinder 2 as well, but filter
    # sold more units, so it wins the tie.
    assert model.bought_together("cy", limit=10) == ["filter", "grinder"]
    # ann already has beans and grinder: only filter is left to recommend.
    assert model.bought_together("ann", limit=10) == ["filter"]
    assert model.bought_together("cy", limit=1) == ["filter"]


def test_a_user_without_orders_gets_nothing_personal() -> None:
    model = CoOccurrenceModel([order("ann", ("beans", 1), ("grinder", 1))])

    assert model.bought_by("zoe") == frozenset()
    assert model.bought_together("zoe", limit=5) == []


def test_most_ordered_ranks_by_units_and_skips_excluded() -> None:
    model = CoOccurrenceModel(
        [order("ann", ("beans", 3), ("mug", 1)), order("bob", ("mug", 1), ("filter", 5))]
    )

    assert model.most_ordered(limit=10) == ["filter", "beans", "mug"]
    assert model.most_ordered(limit=2, exclude={"filter"}) == ["beans", "mug"]
    assert model.order_count == 2


def test_merge_unique_keeps_first_occurrences_up_to_the_limit() -> None:
    assert merge_unique(["a", "b"], ["b", "c", "d"], limit=3) == ["a", "b", "c"]
    assert merge_unique([], ["x"], limit=5) == ["x"]
