package model

import (
	"reflect"
	"testing"
)

func order(user string, lines ...Line) PastOrder { return PastOrder{UserID: user, Lines: lines} }

func l(product string, quantity int32) Line { return Line{ProductID: product, Quantity: quantity} }

func set(ids ...string) map[string]struct{} {
	out := map[string]struct{}{}
	for _, id := range ids {
		out[id] = struct{}{}
	}
	return out
}

func same(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestProductsOrderedTogetherAreRecommendedWithoutWhatTheUserBought(t *testing.T) {
	m := New([]PastOrder{
		order("ann", l("beans", 1), l("grinder", 1)),
		order("bob", l("beans", 1), l("filter", 2)),
		order("bob", l("beans", 1), l("filter", 1), l("grinder", 1)),
		order("cy", l("beans", 1)),
	})

	// cy bought beans; filter and grinder each share 2 orders with beans, but filter
	// sold more units, so it wins the tie.
	same(t, m.BoughtTogether("cy", 10), []string{"filter", "grinder"})
	// ann already has beans and grinder: only filter is left to recommend.
	same(t, m.BoughtTogether("ann", 10), []string{"filter"})
	same(t, m.BoughtTogether("cy", 1), []string{"filter"})
}

func TestAUserWithoutOrdersGetsNothingPersonal(t *testing.T) {
	m := New([]PastOrder{order("ann", l("beans", 1), l("grinder", 1))})

	if len(m.BoughtBy("zoe")) != 0 {
		t.Fatalf("zoe bought %v", m.BoughtBy("zoe"))
	}
	same(t, m.BoughtTogether("zoe", 5), nil)
}

func TestMostOrderedRanksByUnitsAndSkipsExcluded(t *testing.T) {
	m := New([]PastOrder{
		order("ann", l("beans", 3), l("mug", 1)),
		order("bob", l("mug", 1), l("filter", 5)),
	})

	same(t, m.MostOrdered(10, nil), []string{"filter", "beans", "mug"})
	same(t, m.MostOrdered(2, set("filter")), []string{"beans", "mug"})
	if m.OrderCount() != 2 {
		t.Fatalf("order count %d", m.OrderCount())
	}
}

func TestTiesGoToTheIDSoAnswersAreStable(t *testing.T) {
	m := New([]PastOrder{
		order("ann", l("a", 1)),
		order("bob", l("a", 1), l("c", 1), l("b", 1)),
	})

	same(t, m.BoughtTogether("ann", 10), []string{"b", "c"})
	same(t, m.MostOrdered(10, nil), []string{"a", "b", "c"})
}

func TestMergeUniqueKeepsFirstOccurrencesUpToTheLimit(t *testing.T) {
	same(t, MergeUnique(3, []string{"a", "b"}, []string{"b", "c", "d"}), []string{"a", "b", "c"})
	same(t, MergeUnique(5, nil, []string{"x"}), []string{"x"})
}
