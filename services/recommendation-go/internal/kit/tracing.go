package kit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Tracing is v1's (services/kit/tracing.py) in Go: an OpenTelemetry span for every RPC,
// server and client side (otelgrpc's stats handlers), W3C trace context in and out, the
// resource's service.name / service.instance.id, sampler ParentBased(TraceIDRatioBased),
// spans batched to Zipkin (v2 JSON) within a second. Without MESHMART_ZIPKIN_URL there is
// no Tracing and the inbound traceparent is forwarded unchanged.
type Tracing struct {
	provider *sdktrace.TracerProvider
}

// Consul's health checks (every second per instance) and reflection are not traffic.
var notTraffic = filters.Not(filters.Any(filters.HealthCheck(), filters.ServicePrefix("grpc.reflection.")))

var w3c = propagation.TraceContext{}

// NewTracing exports to zipkinURL (e.g. http://127.0.0.1:9411/api/v2/spans).
func NewTracing(service, instance, zipkinURL string, sampleRatio float64) (*Tracing, error) {
	exporter, err := zipkin.New(zipkinURL)
	if err != nil {
		return nil, fmt.Errorf("zipkin exporter for %s: %w", zipkinURL, err)
	}
	res := resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceInstanceID(instance))
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sampleRatio))),
		sdktrace.WithSpanProcessor(v1SpanNames{}),
		// Exported within a second: someone looking for the trace of a call they just
		// made should find it.
		sdktrace.WithBatcher(exporter, sdktrace.WithBatchTimeout(time.Second)),
	)
	return &Tracing{provider: provider}, nil
}

// ServerOption traces the server's RPCs; the span is current when the kit's interceptor
// and the handler run.
func (t *Tracing) ServerOption() grpc.ServerOption {
	return grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(w3c), otelgrpc.WithFilter(notTraffic),
	))
}

// DialOption gives each outbound call a child span and sends its traceparent.
func (t *Tracing) DialOption() grpc.DialOption {
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(w3c), otelgrpc.WithFilter(notTraffic),
	))
}

// Shutdown exports what is still batched (a stopping process keeps its last spans).
func (t *Tracing) Shutdown() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.provider.Shutdown(ctx)
}

// v1SpanNames names RPC spans as v1's instrumentation does, by the full method with its
// leading slash ("/meshmart.order.v1.OrderService/ListRecentOrders"; otelgrpc drops the
// slash), so one search in Zipkin finds the spans of both implementations.
type v1SpanNames struct{}

func (v1SpanNames) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	kind := s.SpanKind()
	if (kind == trace.SpanKindServer || kind == trace.SpanKindClient) && !strings.HasPrefix(s.Name(), "/") {
		s.SetName("/" + s.Name())
	}
}
func (v1SpanNames) OnEnd(sdktrace.ReadOnlySpan)      {}
func (v1SpanNames) Shutdown(context.Context) error   { return nil }
func (v1SpanNames) ForceFlush(context.Context) error { return nil }

// traceparentOf is the W3C traceparent of the span in ctx, or "" without one.
func traceparentOf(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}
