// Package model is the co-occurrence model: "people who bought X also bought Y", from
// recent orders. Plain Go (no gRPC) so it can be tested alone; it mirrors
// services/recommendation/model.py rule for rule, since v1 and v2 must rank alike.
package model

import "sort"

// Line is one order line as far as recommendations care.
type Line struct {
	ProductID string
	Quantity  int32
}

// PastOrder is one confirmed order: who bought which products, how many.
type PastOrder struct {
	UserID string
	Lines  []Line
}

// CoOccurrence counts, for every pair of products, how many orders contained both.
//
// A basket is one order (not a user's whole history): two products bought in the same
// order are a much stronger "bought together" signal than two purchases months apart.
type CoOccurrence struct {
	boughtByUser map[string]map[string]struct{}
	together     map[string]map[string]int
	units        map[string]int64
	orderCount   int
}

// New builds the model from orders.
func New(orders []PastOrder) *CoOccurrence {
	m := &CoOccurrence{
		boughtByUser: map[string]map[string]struct{}{},
		together:     map[string]map[string]int{},
		units:        map[string]int64{},
	}
	for _, order := range orders {
		m.add(order)
	}
	return m
}

func (m *CoOccurrence) add(order PastOrder) {
	m.orderCount++
	basket := map[string]struct{}{}
	for _, line := range order.Lines {
		basket[line.ProductID] = struct{}{}
		// Every line counts, even a quantity of 0: the product was in an order.
		m.units[line.ProductID] += int64(line.Quantity)
	}
	bought := m.boughtByUser[order.UserID]
	if bought == nil {
		bought = map[string]struct{}{}
		m.boughtByUser[order.UserID] = bought
	}
	for product := range basket {
		bought[product] = struct{}{}
		counts := m.together[product]
		if counts == nil {
			counts = map[string]int{}
			m.together[product] = counts
		}
		for other := range basket {
			if other != product {
				counts[other]++
			}
		}
	}
}

// OrderCount is how many orders the model learnt from.
func (m *CoOccurrence) OrderCount() int { return m.orderCount }

// BoughtBy is the set of products the user ordered.
func (m *CoOccurrence) BoughtBy(userID string) map[string]struct{} {
	out := map[string]struct{}{}
	for product := range m.boughtByUser[userID] {
		out[product] = struct{}{}
	}
	return out
}

// BoughtTogether: products co-ordered with the user's purchases, minus what the user
// already bought, best first, at most limit.
//
// Score = number of orders in which the candidate appeared next to any product the user
// bought; ties go to the more ordered product, then to the id (stable answers).
func (m *CoOccurrence) BoughtTogether(userID string, limit int) []string {
	bought := m.boughtByUser[userID]
	scores := map[string]int{}
	for product := range bought {
		for other, count := range m.together[product] {
			if _, mine := bought[other]; !mine {
				scores[other] += count
			}
		}
	}
	ranked := make([]string, 0, len(scores))
	for product := range scores {
		ranked = append(ranked, product)
	}
	sort.Slice(ranked, func(i, j int) bool {
		a, b := ranked[i], ranked[j]
		if scores[a] != scores[b] {
			return scores[a] > scores[b]
		}
		if m.units[a] != m.units[b] {
			return m.units[a] > m.units[b]
		}
		return a < b
	})
	return head(ranked, limit)
}

// MostOrdered: products by units ordered, most first (ties by id), skipping exclude.
func (m *CoOccurrence) MostOrdered(limit int, exclude map[string]struct{}) []string {
	ranked := make([]string, 0, len(m.units))
	for product := range m.units {
		if _, skip := exclude[product]; !skip {
			ranked = append(ranked, product)
		}
	}
	sort.Slice(ranked, func(i, j int) bool {
		a, b := ranked[i], ranked[j]
		if m.units[a] != m.units[b] {
			return m.units[a] > m.units[b]
		}
		return a < b
	})
	return head(ranked, limit)
}

// MergeUnique concatenates id lists keeping first occurrences, up to limit ids.
func MergeUnique(limit int, groups ...[]string) []string {
	seen := map[string]struct{}{}
	merged := []string{}
	for _, group := range groups {
		for _, product := range group {
			if _, dup := seen[product]; dup {
				continue
			}
			seen[product] = struct{}{}
			merged = append(merged, product)
			if len(merged) == limit {
				return merged
			}
		}
	}
	return merged
}

func head(ids []string, limit int) []string {
	if limit < 0 {
		limit = 0
	}
	if len(ids) > limit {
		return ids[:limit]
	}
	return ids
}
