// Package recommend is the Recommender: personal picks from recent orders, popular
// products as the fallback, the model cache, and NOT_FOUND for a user the user service
// does not know. It talks to three ports (OrderHistory, ProductCatalog, UserDirectory) so
// its rules are testable without gRPC; internal/upstreams implements them over gRPC. The
// rules are v1's (services/recommendation/domain.py), one for one.
package recommend

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	catalogv1 "meshmart.local/gen/go/meshmart/catalog/v1"
	"meshmart.local/services/recommendation-go/internal/kit"
	"meshmart.local/services/recommendation-go/internal/model"
)

// ErrHistoryUnavailable: the purchase history could not be read (order down, slow or
// failing). OrderHistory implementations wrap it.
var ErrHistoryUnavailable = errors.New("order history unavailable")

// ErrDirectoryUnavailable: the user service could not say whether a user exists (down,
// slow or failing). UserDirectory implementations wrap it.
var ErrDirectoryUnavailable = errors.New("user directory unavailable")

// Source says how a list of recommendations was made.
type Source int

const (
	Personalized Source = iota + 1
	Popular
)

func (s Source) String() string {
	if s == Personalized {
		return "personalized"
	}
	return "popular"
}

// Recommendation is the Recommender's answer.
type Recommendation struct {
	Products []*catalogv1.Product
	Source   Source
}

// OrderHistory reads recent confirmed orders of all users.
type OrderHistory interface {
	// RecentOrders returns an error wrapping ErrHistoryUnavailable when it cannot.
	RecentOrders(ctx context.Context) ([]model.PastOrder, error)
}

// ProductCatalog gives product details and the catalog's popularity ranking.
type ProductCatalog interface {
	// Products returns the products in the given order; ids the catalog does not know
	// are dropped.
	Products(ctx context.Context, productIDs []string) ([]*catalogv1.Product, error)
	// MostPopular returns up to limit products by the catalog's popularity field,
	// skipping exclude.
	MostPopular(ctx context.Context, limit int, exclude map[string]struct{}) ([]*catalogv1.Product, error)
}

// UserDirectory says whether the user service knows a user.
type UserDirectory interface {
	// Exists returns an error wrapping ErrDirectoryUnavailable when it cannot tell.
	Exists(ctx context.Context, userID string) (bool, error)
}

// Recommender ranks with a co-occurrence model rebuilt from the order history at most
// every ModelTTL.
//
// Why cache: building the model reads hundreds of orders (several ListRecentOrders
// pages) while it changes slowly; re-reading it per request would make order's load grow
// with dashboard traffic. The cost is that an order shows up in recommendations up to
// ModelTTL late. Only successful builds are cached: when order fails we fall back to
// popular products rather than serve a model of unknown age.
//
// The user lookup only turns away users the user service says do not exist: when it
// cannot tell (down, slow), recommendations are a non-critical feature and go on without
// it rather than fail the dashboard that shows them.
type Recommender struct {
	history  OrderHistory
	catalog  ProductCatalog
	users    UserDirectory
	modelTTL time.Duration
	now      func() time.Time

	mu      sync.Mutex
	model   *model.CoOccurrence
	builtAt time.Time
	refresh *flight
}

// flight is one rebuild of the model that concurrent requests wait for together.
type flight struct {
	done  chan struct{}
	model *model.CoOccurrence // nil: the history was unavailable
}

// New builds a Recommender; now is the clock (time.Now in production).
func New(history OrderHistory, catalog ProductCatalog, users UserDirectory, modelTTL time.Duration, now func() time.Time) *Recommender {
	if now == nil {
		now = time.Now
	}
	return &Recommender{history: history, catalog: catalog, users: users, modelTTL: modelTTL, now: now}
}

// Recommend returns up to limit products for the user.
func (r *Recommender) Recommend(ctx context.Context, userID string, limit int) (Recommendation, error) {
	// Side by side: the lookup adds no time to a model rebuild.
	unknown := make(chan bool, 1)
	go func() { unknown <- r.isUnknown(ctx, userID) }()
	m, err := r.currentModel(ctx)
	isUnknown := <-unknown
	if err != nil {
		return Recommendation{}, err
	}
	if isUnknown {
		return Recommendation{}, kit.NotFound("user " + userID + " not found")
	}
	if m == nil || m.OrderCount() == 0 {
		// No history at all: the catalog's own popularity is the best signal there is.
		products, err := r.catalog.MostPopular(ctx, limit, map[string]struct{}{})
		if err != nil {
			return Recommendation{}, err
		}
		return Recommendation{Products: products, Source: Popular}, nil
	}
	bought := m.BoughtBy(userID)
	together := m.BoughtTogether(userID, limit)
	popular := m.MostOrdered(limit, bought)
	// Personal picks first; popular ones fill the list up to limit.
	products, err := r.catalog.Products(ctx, model.MergeUnique(limit, together, popular))
	if err != nil {
		return Recommendation{}, err
	}
	if len(products) < limit {
		// Few orders so far: pad with catalog popularity so the list is never short.
		seen := map[string]struct{}{}
		for id := range bought {
			seen[id] = struct{}{}
		}
		for _, p := range products {
			seen[p.GetProductId()] = struct{}{}
		}
		more, err := r.catalog.MostPopular(ctx, limit-len(products), seen)
		if err != nil {
			return Recommendation{}, err
		}
		products = append(products, more...)
	}
	source := Popular
	if len(together) > 0 {
		source = Personalized
	}
	if len(products) > limit {
		products = products[:limit]
	}
	return Recommendation{Products: products, Source: source}, nil
}

func (r *Recommender) isUnknown(ctx context.Context, userID string) bool {
	exists, err := r.users.Exists(ctx, userID)
	if err != nil {
		slog.WarnContext(ctx, "user lookup failed, recommending without it", "error", err.Error())
		return false
	}
	return !exists
}

func (r *Recommender) currentModel(ctx context.Context) (*model.CoOccurrence, error) {
	r.mu.Lock()
	if r.model != nil && r.now().Sub(r.builtAt) < r.modelTTL {
		m := r.model
		r.mu.Unlock()
		return m, nil
	}
	f := r.refresh
	if f == nil {
		f = &flight{done: make(chan struct{})}
		r.refresh = f
		rebuildCtx, cancel := detached(ctx)
		go func() {
			defer cancel()
			r.rebuild(rebuildCtx, f)
		}()
	}
	r.mu.Unlock()
	// Concurrent requests share one rebuild (one read of the history, one timeout when
	// order is down); it runs detached so one caller giving up does not cancel it for all.
	select {
	case <-f.done:
		return f.model, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Recommender) rebuild(ctx context.Context, f *flight) {
	orders, err := r.history.RecentOrders(ctx)
	r.mu.Lock()
	defer func() {
		r.refresh = nil
		r.mu.Unlock()
		close(f.done)
	}()
	if err != nil {
		slog.WarnContext(ctx, "order history unavailable, recommending popular products", "error", err.Error())
		return
	}
	f.model = model.New(orders)
	r.model, r.builtAt = f.model, r.now()
}

// detached keeps the request's values (request id, trace, caller) and its deadline but
// not its cancellation: the rebuild started by one request serves every waiting one,
// yet never outlives the deadline of the request that started it (as in v1, where the
// rebuild task inherits that request's remaining time).
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	out := context.WithoutCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(out, deadline)
	}
	return out, func() {}
}
