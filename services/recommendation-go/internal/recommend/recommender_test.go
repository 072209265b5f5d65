package recommend

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	catalogv1 "meshmart.local/gen/go/meshmart/catalog/v1"
	"meshmart.local/services/recommendation-go/internal/model"
)

// The Recommender's own rules with in-memory ports: when the history is read (once per
// TTL, once for concurrent requests), what happens when it cannot be read, and what the
// user lookup decides. The same cases as v1's tests/unit/recommendation/test_recommender.py.

var products = func() map[string]*catalogv1.Product {
	out := map[string]*catalogv1.Product{}
	for n := 0; n < 10; n++ {
		id := fmt.Sprintf("sku-%d", n)
		out[id] = &catalogv1.Product{ProductId: id, Popularity: int32(100 - n)}
	}
	return out
}()

type history struct {
	mu      sync.Mutex
	orders  []model.PastOrder
	reads   int
	failing bool
	entered chan struct{} // receives one value per read, when given
	release chan struct{} // reads block until it is closed, when given
}

func (h *history) RecentOrders(ctx context.Context) ([]model.PastOrder, error) {
	h.mu.Lock()
	h.reads++
	entered, release := h.entered, h.release
	h.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if release != nil {
		<-release
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing {
		return nil, fmt.Errorf("%w: order is down", ErrHistoryUnavailable)
	}
	return append([]model.PastOrder(nil), h.orders...), nil
}

func (h *history) readCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads
}

type catalog struct{}

func (catalog) Products(_ context.Context, ids []string) ([]*catalogv1.Product, error) {
	out := []*catalogv1.Product{}
	for _, id := range ids {
		if p, ok := products[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func (catalog) MostPopular(_ context.Context, limit int, exclude map[string]struct{}) ([]*catalogv1.Product, error) {
	ranked := []*catalogv1.Product{}
	for _, p := range products {
		if _, skip := exclude[p.ProductId]; !skip {
			ranked = append(ranked, p)
		}
	}
	sort.Slice(ranked, func(i, j int) bool { return ranked[i].Popularity > ranked[j].Popularity })
	if len(ranked) > limit {
		ranked = ranked[:limit]
	}
	return ranked, nil
}

// directory knows the users in known (everyone when known is nil); failing: it cannot
// tell; waitFor: each lookup first waits for a value from it.
type directory struct {
	known   map[string]bool
	failing bool
	waitFor chan struct{}
}

func (d directory) Exists(_ context.Context, userID string) (bool, error) {
	if d.waitFor != nil {
		<-d.waitFor
	}
	if d.failing {
		return false, fmt.Errorf("%w: user is down", ErrDirectoryUnavailable)
	}
	return d.known == nil || d.known[userID], nil
}

var everyone = directory{}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func bought(user string, ids ...string) model.PastOrder {
	lines := make([]model.Line, len(ids))
	for i, id := range ids {
		lines[i] = model.Line{ProductID: id, Quantity: 1}
	}
	return model.PastOrder{UserID: user, Lines: lines}
}

func ids(r Recommendation) []string {
	out := make([]string, len(r.Products))
	for i, p := range r.Products {
		out[i] = p.ProductId
	}
	return out
}

func recommend(t *testing.T, r *Recommender, user string, limit int) Recommendation {
	t.Helper()
	got, err := r.Recommend(context.Background(), user, limit)
	if err != nil {
		t.Fatalf("Recommend(%s): %v", user, err)
	}
	return got
}

func TestTheHistoryIsReadOncePerTTL(t *testing.T) {
	h := &history{orders: []model.PastOrder{bought("bob", "sku-5", "sku-6")}}
	c := &clock{now: time.Unix(1000, 0)}
	r := New(h, catalog{}, everyone, 30*time.Second, c.Now)

	recommend(t, r, "ann", 3)
	h.mu.Lock()
	h.orders = append(h.orders, bought("ann", "sku-5"))
	h.mu.Unlock()
	c.now = c.now.Add(29 * time.Second)
	cached := recommend(t, r, "ann", 3)
	c.now = c.now.Add(2 * time.Second)
	fresh := recommend(t, r, "ann", 3)

	if h.readCount() != 2 {
		t.Fatalf("history read %d times, want 2", h.readCount())
	}
	if cached.Source != Popular { // ann's order is not in the cached model
		t.Fatalf("cached source %v", cached.Source)
	}
	if fresh.Source != Personalized || ids(fresh)[0] != "sku-6" {
		t.Fatalf("fresh %v %v", fresh.Source, ids(fresh))
	}
}

func TestConcurrentRequestsShareOneHistoryRead(t *testing.T) {
	h := &history{
		orders:  []model.PastOrder{bought("bob", "sku-5", "sku-6")},
		entered: make(chan struct{}, 10),
		release: make(chan struct{}),
	}
	r := New(h, catalog{}, everyone, 30*time.Second, nil)

	results := make(chan Recommendation, 5)
	for i := 0; i < 5; i++ {
		go func() {
			got, _ := r.Recommend(context.Background(), "bob", 2)
			results <- got
		}()
	}
	<-h.entered // the first request is reading; the others queue behind its read
	close(h.release)
	for i := 0; i < 5; i++ {
		if got := <-results; got.Source != Popular {
			t.Fatalf("source %v", got.Source)
		}
	}
	if h.readCount() != 1 {
		t.Fatalf("history read %d times, want 1", h.readCount())
	}
}

func TestAnUnavailableHistoryGivesCatalogPopularityAndIsRetried(t *testing.T) {
	h := &history{orders: []model.PastOrder{bought("bob", "sku-5", "sku-6")}, failing: true}
	r := New(h, catalog{}, everyone, 30*time.Second, nil)

	fallback := recommend(t, r, "bob", 3)
	h.mu.Lock()
	h.failing = false
	h.mu.Unlock()
	recovered := recommend(t, r, "ann", 3)

	if fallback.Source != Popular || !reflect.DeepEqual(ids(fallback), []string{"sku-0", "sku-1", "sku-2"}) {
		t.Fatalf("fallback %v %v", fallback.Source, ids(fallback))
	}
	// A failed read is not cached: the next request reads the history again.
	if h.readCount() != 2 {
		t.Fatalf("history read %d times, want 2", h.readCount())
	}
	if !reflect.DeepEqual(ids(recovered)[:2], []string{"sku-5", "sku-6"}) {
		t.Fatalf("recovered %v", ids(recovered))
	}
}

func TestACancelledCallerDoesNotCancelTheSharedRead(t *testing.T) {
	h := &history{
		orders:  []model.PastOrder{bought("bob", "sku-5", "sku-6")},
		entered: make(chan struct{}, 10),
		release: make(chan struct{}),
	}
	r := New(h, catalog{}, everyone, 30*time.Second, nil)

	impatientCtx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, err := r.Recommend(impatientCtx, "bob", 2)
		impatient <- err
	}()
	<-h.entered
	patient := make(chan Recommendation, 1)
	go func() {
		got, _ := r.Recommend(context.Background(), "ann", 2)
		patient <- got
	}()
	cancel()
	if err := <-impatient; err != context.Canceled {
		t.Fatalf("impatient caller got %v", err)
	}
	close(h.release)
	result := <-patient

	if h.readCount() != 1 {
		t.Fatalf("history read %d times, want 1", h.readCount())
	}
	if !reflect.DeepEqual(ids(result), []string{"sku-5", "sku-6"}) {
		t.Fatalf("result %v", ids(result))
	}
}

func TestTheUsersOwnPurchasesAreNeverRecommendedAndShortListsArePadded(t *testing.T) {
	h := &history{orders: []model.PastOrder{bought("bob", "sku-5", "sku-6"), bought("ann", "sku-5")}}
	r := New(h, catalog{}, everyone, 0, nil)

	got := recommend(t, r, "ann", 4)

	// sku-6 (bought with ann's sku-5), then the catalog's most popular, never sku-5.
	if got.Source != Personalized || !reflect.DeepEqual(ids(got), []string{"sku-6", "sku-0", "sku-1", "sku-2"}) {
		t.Fatalf("got %v %v", got.Source, ids(got))
	}
}

func TestAnUnknownUserIsNotFoundNamingTheUser(t *testing.T) {
	h := &history{orders: []model.PastOrder{bought("bob", "sku-5", "sku-6")}}
	r := New(h, catalog{}, directory{known: map[string]bool{"bob": true}}, 0, nil)

	_, err := r.Recommend(context.Background(), "usr-nobody", 3)
	known := recommend(t, r, "bob", 3)

	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "user usr-nobody not found" {
		t.Fatalf("unknown user: %v", err)
	}
	if len(known.Products) != 3 {
		t.Fatalf("known user: %v", ids(known))
	}
}

func TestAUserLookupThatFailsDoesNotFailTheRecommendation(t *testing.T) {
	h := &history{orders: []model.PastOrder{bought("bob", "sku-5", "sku-6"), bought("ann", "sku-5")}}
	r := New(h, catalog{}, directory{failing: true}, 0, nil)

	got := recommend(t, r, "ann", 2)

	// The answer it would have been with the user known: the lookup only turns users away.
	if got.Source != Personalized || !reflect.DeepEqual(ids(got), []string{"sku-6", "sku-0"}) {
		t.Fatalf("got %v %v", got.Source, ids(got))
	}
}

func TestTheUserLookupRunsBesideTheHistoryRead(t *testing.T) {
	h := &history{orders: []model.PastOrder{bought("bob", "sku-5", "sku-6")}, entered: make(chan struct{}, 1)}
	// The lookup answers only once the history read has started: one after the other
	// (lookup first) would never finish.
	r := New(h, catalog{}, directory{waitFor: h.entered}, 0, nil)

	done := make(chan error, 1)
	go func() {
		_, err := r.Recommend(context.Background(), "bob", 2)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lookup waited for the history read, or the other way round")
	}
}
