package kit

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// LevelCritical is v1's CRITICAL (above slog's ERROR).
const LevelCritical = slog.LevelError + 4

// ParseLevel maps v1's level names (MESHMART_LOG_LEVEL) to slog levels.
func ParseLevel(name string) slog.Level {
	switch strings.ToUpper(name) {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	case "CRITICAL":
		return LevelCritical
	}
	return slog.LevelInfo
}

// NewLogger writes one JSON object per line in v1's shape (structlog's keys): "event",
// "level" (lower case, "warning" not "warn"), "timestamp" (UTC ISO 8601), "service",
// "instance", and inside an RPC "request_id" and "trace_id". One log query then finds a
// request in both implementations' logs.
func NewLogger(w io.Writer, service, instance string, level slog.Leveler) *slog.Logger {
	json := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: v1Keys})
	return slog.New(&scopeHandler{next: json.WithAttrs([]slog.Attr{
		slog.String("service", service), slog.String("instance", instance),
	})})
}

func v1Keys(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "event"
	case slog.TimeKey:
		a.Key = "timestamp"
		a.Value = slog.StringValue(a.Value.Time().UTC().Format("2006-01-02T15:04:05.000000Z"))
	case slog.LevelKey:
		level, _ := a.Value.Any().(slog.Level)
		a.Value = slog.StringValue(levelName(level))
	}
	return a
}

func levelName(l slog.Level) string {
	switch {
	case l >= LevelCritical:
		return "critical"
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// scopeHandler adds the request scope of the record's context: request_id, and trace_id
// and span_id of the current span (with tracing; without, the trace id the caller sent).
type scopeHandler struct{ next slog.Handler }

func (h *scopeHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *scopeHandler) Handle(ctx context.Context, r slog.Record) error {
	s, inRPC := ScopeFrom(ctx)
	if inRPC {
		r.AddAttrs(slog.String("request_id", s.RequestID))
	}
	if span := trace.SpanContextFromContext(ctx); span.IsValid() {
		r.AddAttrs(slog.String("trace_id", span.TraceID().String()), slog.String("span_id", span.SpanID().String()))
	} else if traceID := s.TraceID(); inRPC && traceID != "" {
		r.AddAttrs(slog.String("trace_id", traceID))
	}
	return h.next.Handle(ctx, r)
}

func (h *scopeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &scopeHandler{next: h.next.WithAttrs(attrs)}
}

func (h *scopeHandler) WithGroup(name string) slog.Handler {
	return &scopeHandler{next: h.next.WithGroup(name)}
}

func durationMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
