// Package upstreams implements the Recommender's ports over gRPC: order's recent orders,
// catalog's products and user's GetUser (v1: services/recommendation/upstreams.py).
//
// Each adapter gets its client injected and one time budget per operation; a multi-page
// read shares the budget across its pages, so "read the history" never takes longer than
// the configured timeout however many pages it needs. The inbound RPC's deadline bounds
// them too, since it travels in the context.
package upstreams

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	catalogv1 "meshmart.local/gen/go/meshmart/catalog/v1"
	orderv1 "meshmart.local/gen/go/meshmart/order/v1"
	userv1 "meshmart.local/gen/go/meshmart/user/v1"
	"meshmart.local/services/recommendation-go/internal/kit"
	"meshmart.local/services/recommendation-go/internal/model"
	"meshmart.local/services/recommendation-go/internal/recommend"
)

// MaxPageSize is the largest page ListRecentOrders and ListProducts accept.
const MaxPageSize = 100

// OrderHistory reads the newest MaxOrders orders of all users via order.ListRecentOrders.
type OrderHistory struct {
	Client    orderv1.OrderServiceClient
	Timeout   time.Duration
	MaxOrders int
}

// RecentOrders returns the confirmed ones; errors wrap recommend.ErrHistoryUnavailable.
func (h OrderHistory) RecentOrders(ctx context.Context) ([]model.PastOrder, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	orders := []model.PastOrder{}
	read, token := 0, ""
	for read < h.MaxOrders {
		response, err := h.Client.ListRecentOrders(ctx, &orderv1.ListRecentOrdersRequest{
			PageSize: int32(min(MaxPageSize, h.MaxOrders-read)), PageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: ListRecentOrders: %s", recommend.ErrHistoryUnavailable, kit.CodeName(status.Code(err)))
		}
		read += len(response.GetOrders())
		for _, order := range response.GetOrders() {
			// Only confirmed orders were bought; pending ones may still be cancelled.
			if order.GetState() != orderv1.Order_STATE_CONFIRMED {
				continue
			}
			lines := make([]model.Line, 0, len(order.GetLines()))
			for _, line := range order.GetLines() {
				lines = append(lines, model.Line{ProductID: line.GetProductId(), Quantity: line.GetQuantity()})
			}
			orders = append(orders, model.PastOrder{UserID: order.GetUserId(), Lines: lines})
		}
		token = response.GetNextPageToken()
		if token == "" || len(response.GetOrders()) == 0 {
			break
		}
	}
	return orders, nil
}

// ProductCatalog gives product details and the popularity ranking from catalog.
type ProductCatalog struct {
	Client      catalogv1.CatalogServiceClient
	Timeout     time.Duration
	MaxProducts int
}

// Products fetches the products in parallel (the lookup takes one call's time, not N),
// in the given order, skipping ids the catalog no longer knows.
func (c ProductCatalog) Products(ctx context.Context, productIDs []string) ([]*catalogv1.Product, error) {
	results := make([]*catalogv1.Product, len(productIDs))
	errs := make([]error, len(productIDs))
	var wg sync.WaitGroup
	for i, id := range productIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.get(ctx, id)
		}()
	}
	wg.Wait()
	products := make([]*catalogv1.Product, 0, len(productIDs))
	for i := range productIDs {
		if errs[i] != nil {
			return nil, errs[i] // the first failure in request order, as v1 reports it
		}
		if results[i] != nil {
			products = append(products, results[i])
		}
	}
	return products, nil
}

func (c ProductCatalog) get(ctx context.Context, productID string) (*catalogv1.Product, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	response, err := c.Client.GetProduct(ctx, &catalogv1.GetProductRequest{ProductId: productID})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, nil // ordered once, since removed from the catalog: skip it
		}
		return nil, kit.Unavailable("catalog GetProduct failed: " + kit.CodeName(status.Code(err)))
	}
	return response.GetProduct(), nil
}

// MostPopular ranks the catalog by its popularity field. ListProducts is ordered by id,
// so this needs every page (bounded by MaxProducts; the shop's catalog is far smaller).
func (c ProductCatalog) MostPopular(ctx context.Context, limit int, exclude map[string]struct{}) ([]*catalogv1.Product, error) {
	if limit <= 0 {
		return []*catalogv1.Product{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	products := []*catalogv1.Product{}
	read, token := 0, ""
	for read < c.MaxProducts {
		response, err := c.Client.ListProducts(ctx, &catalogv1.ListProductsRequest{PageSize: MaxPageSize, PageToken: token})
		if err != nil {
			return nil, kit.Unavailable("catalog ListProducts failed: " + kit.CodeName(status.Code(err)))
		}
		read += len(response.GetProducts())
		for _, p := range response.GetProducts() {
			if _, skip := exclude[p.GetProductId()]; !skip {
				products = append(products, p)
			}
		}
		token = response.GetNextPageToken()
		if token == "" || len(response.GetProducts()) == 0 {
			break
		}
	}
	sort.SliceStable(products, func(i, j int) bool {
		a, b := products[i], products[j]
		if a.GetPopularity() != b.GetPopularity() {
			return a.GetPopularity() > b.GetPopularity()
		}
		return a.GetProductId() < b.GetProductId()
	})
	if len(products) > limit {
		products = products[:limit]
	}
	return products, nil
}

// UserDirectory says whether a user exists, from user.GetUser: NOT_FOUND is a "no", any
// other failure means user could not tell.
type UserDirectory struct {
	Client  userv1.UserServiceClient
	Timeout time.Duration
}

// Exists returns an error wrapping recommend.ErrDirectoryUnavailable when user cannot tell.
func (d UserDirectory) Exists(ctx context.Context, userID string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	_, err := d.Client.GetUser(ctx, &userv1.GetUserRequest{UserId: userID})
	if err == nil {
		return true, nil
	}
	if status.Code(err) == codes.NotFound {
		return false, nil
	}
	return false, fmt.Errorf("%w: GetUser: %s", recommend.ErrDirectoryUnavailable, kit.CodeName(status.Code(err)))
}
