package kit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Metadata keys every meshmart service reads and forwards (services/kit/context.py).
const (
	RequestIDKey   = "x-request-id"
	UserIDKey      = "x-meshmart-user-id"
	TraceparentKey = "traceparent"
)

// Scope is who is calling and which request this is, for the duration of one RPC. The
// deadline is not here: Go's context carries it, and outbound calls inherit it.
type Scope struct {
	RequestID   string
	UserID      string // the verified user id the edge forwards; "" for internal callers
	Traceparent string
}

type scopeKey struct{}

// WithScope binds a Scope to ctx.
func WithScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// ScopeFrom returns the Scope bound to ctx, if any.
func ScopeFrom(ctx context.Context) (Scope, bool) {
	s, ok := ctx.Value(scopeKey{}).(Scope)
	return s, ok
}

// TraceID is the W3C trace id (second field of traceparent), or "".
func (s Scope) TraceID() string {
	parts := strings.Split(s.Traceparent, "-")
	if len(parts) >= 4 && len(parts[1]) == 32 {
		return parts[1]
	}
	return ""
}

// NewRequestID is 16 random bytes in hex, like v1's.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// scopeFromIncoming reads the scope of an inbound RPC from its metadata (the first
// non-empty value of each key), with a new request id when the caller sent none. With
// tracing, the traceparent is this RPC's own server span (a child of the caller's), so
// what it calls and logs hangs under it; without, the caller's, forwarded as is.
func scopeFromIncoming(ctx context.Context) Scope {
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(key string) string {
		for _, v := range md.Get(key) {
			if v != "" {
				return v
			}
		}
		return ""
	}
	s := Scope{RequestID: first(RequestIDKey), UserID: first(UserIDKey), Traceparent: first(TraceparentKey)}
	if own := traceparentOf(ctx); own != "" {
		s.Traceparent = own
	}
	if s.RequestID == "" {
		s.RequestID = NewRequestID()
	}
	return s
}

// CallerUserID is the user id the edge forwarded with this RPC ("" for internal callers):
// the first value of x-meshmart-user-id, as v1's caller_user_id reads it.
func CallerUserID(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if values := md.Get(UserIDKey); len(values) > 0 {
		return values[0]
	}
	return ""
}

// EnsureCallerMayActFor refuses a user-scoped RPC whose forwarded caller is another user.
// Internal callers (no forwarded user id) are trusted: the mesh's intentions decide who
// may call at all.
func EnsureCallerMayActFor(ctx context.Context, userID string) error {
	if caller := CallerUserID(ctx); caller != "" && caller != userID {
		return PermissionDenied("user " + caller + " may not act for user " + userID)
	}
	return nil
}
