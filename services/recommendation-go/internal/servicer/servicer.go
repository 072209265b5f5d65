// Package servicer is RecommendationService over gRPC: validate, ask the Recommender, map
// to the response (v1: services/recommendation/servicer.py, same rules and messages).
package servicer

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	recommendationv1 "meshmart.local/gen/go/meshmart/recommendation/v1"
	"meshmart.local/services/recommendation-go/internal/kit"
	"meshmart.local/services/recommendation-go/internal/recommend"
)

// Name is the full name of the service, for health and reflection.
const Name = "meshmart.recommendation.v1.RecommendationService"

const (
	DefaultLimit = 10
	MaxLimit     = 50
	// VersionHeader names the release that answered (response header metadata), so a
	// caller of the canary split can tell v1 from v2; the same key, sent as a request
	// header, makes the mesh route to that subset.
	VersionHeader = "x-meshmart-version"
)

var sources = map[recommend.Source]recommendationv1.RecommendationSource{
	recommend.Personalized: recommendationv1.RecommendationSource_RECOMMENDATION_SOURCE_PERSONALIZED,
	recommend.Popular:      recommendationv1.RecommendationSource_RECOMMENDATION_SOURCE_POPULAR,
}

// Recommender is what the servicer needs from recommend.Recommender.
type Recommender interface {
	Recommend(ctx context.Context, userID string, limit int) (recommend.Recommendation, error)
}

// Servicer implements recommendationv1.RecommendationServiceServer.
type Servicer struct {
	recommendationv1.UnimplementedRecommendationServiceServer
	recommender Recommender
	version     string
}

// New returns the servicer; version is what VersionHeader reports.
func New(recommender Recommender, version string) *Servicer {
	return &Servicer{recommender: recommender, version: version}
}

// Register adds the servicer to a server.
func (s *Servicer) Register(server *grpc.Server) {
	recommendationv1.RegisterRecommendationServiceServer(server, s)
}

// Recommend: user_id required (surrounding spaces ignored), limit 1..50 with 0 meaning 10,
// and a forwarded caller other than user_id is PERMISSION_DENIED.
func (s *Servicer) Recommend(ctx context.Context, req *recommendationv1.RecommendRequest) (*recommendationv1.RecommendResponse, error) {
	// Sent with the answer or the error; failing to set it must not fail the call.
	_ = grpc.SetHeader(ctx, metadata.Pairs(VersionHeader, s.version))
	userID := strings.TrimSpace(req.GetUserId())
	if userID == "" {
		return nil, kit.InvalidArgument("user_id", "must not be empty")
	}
	// 0 is proto3's "unset": the default; anything else must be within 1..MaxLimit.
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return nil, kit.InvalidArgument("limit", fmt.Sprintf("must be between 1 and %d, got %d", MaxLimit, limit))
	}
	if err := kit.EnsureCallerMayActFor(ctx, userID); err != nil {
		return nil, err
	}
	recommendation, err := s.recommender.Recommend(ctx, userID, limit)
	if err != nil {
		return nil, err
	}
	return &recommendationv1.RecommendResponse{
		Products: recommendation.Products,
		Source:   sources[recommendation.Source],
	}, nil
}
