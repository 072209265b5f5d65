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
	// What the callee's sidecar says about the mTLS peer (context.py's CLIENT_CERT_KEY).
	ClientCertKey = "x-forwarded-client-cert"
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
//
// A user id is believed only from a caller in asserters (nil: no mesh in front, the
// header as sent); from anyone else it is PERMISSION_DENIED naming the caller, as
// context.py's asserted_user.
func scopeFromIncoming(ctx context.Context, asserters map[string]bool) (Scope, error) {
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
	if s.UserID != "" && asserters != nil {
		caller := MeshCaller(first(ClientCertKey))
		if caller == "" {
			s.UserID = ""
			return s, PermissionDenied("a caller outside the mesh (no client certificate through the sidecar) may not assert an end user")
		}
		if !asserters[caller] {
			s.UserID = ""
			return s, PermissionDenied("caller " + caller + " may not assert an end user")
		}
	}
	return s, nil
}

// MeshCaller is the Consul service name of the mTLS peer in an x-forwarded-client-cert
// header: the URI of its LAST element (the one this instance's sidecar appended), or ""
// (context.py's mesh_caller).
func MeshCaller(xfcc string) string {
	if xfcc == "" {
		return ""
	}
	elements := splitUnquoted(xfcc, ',')
	for _, pair := range splitUnquoted(elements[len(elements)-1], ';') {
		key, value, _ := strings.Cut(pair, "=")
		if strings.ToLower(strings.TrimSpace(key)) != "uri" {
			continue
		}
		path := strings.Split(strings.Trim(strings.TrimSpace(value), `"`), "/")
		if n := len(path); n >= 2 && path[n-2] == "svc" && path[n-1] != "" {
			return path[n-1]
		}
	}
	return ""
}

// splitUnquoted splits text at sep outside double quotes (XFCC quotes Subject, Cert, Chain).
func splitUnquoted(text string, sep rune) []string {
	var parts []string
	var current strings.Builder
	quoted, escaped := false, false
	for _, c := range text {
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, current.String())
			current.Reset()
			continue
		}
		current.WriteRune(c)
	}
	return append(parts, current.String())
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
