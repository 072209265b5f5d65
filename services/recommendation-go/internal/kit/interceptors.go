package kit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Health checks and reflection arrive every second from Consul and operators; logging
// them at debug keeps the access log about real traffic.
var quietPrefixes = []string{"/grpc.health.v1.Health/", "/grpc.reflection."}

// UnaryServerInterceptor gives every RPC its request scope, maps errors to status codes,
// records its metrics (metrics may be nil) and writes one access-log line:
// services/kit/interceptors.py's ServiceInterceptor.
func UnaryServerInterceptor(log *slog.Logger, metrics *RPCMetrics, asserters map[string]bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		scope, refused := scopeFromIncoming(ctx, asserters)
		ctx = WithScope(ctx, scope)
		started := time.Now()
		defer func() {
			if p := recover(); p != nil {
				err = internal(ctx, log, info.FullMethod, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			}
			finish(ctx, log, metrics, info.FullMethod, "unary", started, err)
		}()
		if refused != nil {
			return nil, toStatus(ctx, log, info.FullMethod, refused)
		}
		resp, err = handler(ctx, req)
		return resp, toStatus(ctx, log, info.FullMethod, err)
	}
}

// StreamServerInterceptor is the same for streaming RPCs (health Watch, reflection).
func StreamServerInterceptor(log *slog.Logger, metrics *RPCMetrics, asserters map[string]bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		scope, refused := scopeFromIncoming(ss.Context(), asserters)
		ctx := WithScope(ss.Context(), scope)
		started := time.Now()
		defer func() {
			if p := recover(); p != nil {
				err = internal(ctx, log, info.FullMethod, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			}
			finish(ctx, log, metrics, info.FullMethod, "stream", started, err)
		}()
		if refused != nil {
			return toStatus(ctx, log, info.FullMethod, refused)
		}
		err = handler(srv, &scopedStream{ServerStream: ss, ctx: ctx})
		return toStatus(ctx, log, info.FullMethod, err)
	}
}

type scopedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *scopedStream) Context() context.Context { return s.ctx }

// toStatus: domain errors and status errors go out as they are; a cancelled or expired
// context as CANCELLED / DEADLINE_EXCEEDED; anything else is INTERNAL, with the detail in
// our log and never in the reply (it can reveal internals).
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	// Once the caller's own deadline has passed, that is the answer, whatever a
	// dependency said on the way out (what grpc.aio tells v1's callers too).
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	var domain *Error
	if errors.As(err, &domain) {
		return domain
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "cancelled")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return internal(ctx, log, method, err)
}

func internal(ctx context.Context, log *slog.Logger, method string, err error) error {
	log.ErrorContext(ctx, "rpc.unhandled_exception", "method", method, "error", err.Error())
	s, _ := ScopeFrom(ctx)
	return status.Errorf(codes.Internal, "internal error (request id %s)", s.RequestID)
}

func finish(ctx context.Context, log *slog.Logger, metrics *RPCMetrics, method, kind string, started time.Time, err error) {
	code := status.Code(err)
	took := time.Since(started)
	metrics.Observe(method, kind, code, took)
	attrs := []any{
		"method", method,
		"code", CodeName(code),
		"duration_ms", durationMS(took),
	}
	var domain *Error
	if errors.As(err, &domain) {
		attrs = append(attrs, "error", domain.Message)
	}
	level := slog.LevelInfo
	if code == codes.OK && hasAnyPrefix(method, quietPrefixes) {
		level = slog.LevelDebug
	}
	log.Log(ctx, level, "rpc", attrs...)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// DefaultCallTimeout bounds an outbound call whose context has no deadline.
const DefaultCallTimeout = 5 * time.Second

// PropagatingClientInterceptor forwards the current request id, caller user id and
// traceparent, and gives a call without a deadline DefaultCallTimeout (clients.py). The
// inbound RPC's deadline reaches outbound calls through the context itself. With tracing,
// otelgrpc's client handler then replaces the traceparent with the call's own span.
// Retries are Envoy's job, so there are none here.
func PropagatingClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
			defer cancel()
		}
		s, ok := ScopeFrom(ctx)
		if !ok {
			s = Scope{RequestID: NewRequestID()}
		}
		existing, _ := metadata.FromOutgoingContext(ctx)
		for key, value := range map[string]string{
			RequestIDKey: s.RequestID, UserIDKey: s.UserID, TraceparentKey: s.Traceparent,
		} {
			// An explicit value from the caller wins over the propagated one.
			if value != "" && len(existing.Get(key)) == 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, key, value)
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
