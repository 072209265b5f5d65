package kit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

// The RED metrics of the server side, named and labelled as v1's (services/kit/metrics.py,
// itself go-grpc-prometheus's names), so one dashboard and one set of recording rules cover
// both implementations: rate and errors from grpc_server_handled_total, duration from
// grpc_server_handling_seconds.

// latencyBuckets are v1's, in seconds: fine at the bottom so a p99 of a few
// milliseconds is not rounded up to the next bucket.
var latencyBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
}

// RPCMetrics records every RPC the server handles.
type RPCMetrics struct {
	handled  *prometheus.CounterVec
	handling *prometheus.HistogramVec
}

// NewRPCMetrics registers the metrics on reg.
func NewRPCMetrics(reg prometheus.Registerer) *RPCMetrics {
	m := &RPCMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "RPCs completed on the server, by method and status code.",
		}, []string{"grpc_service", "grpc_method", "grpc_type", "grpc_code"}),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Time from receiving an RPC to its status, by method.",
			Buckets: latencyBuckets,
		}, []string{"grpc_service", "grpc_method", "grpc_type"}),
	}
	reg.MustRegister(m.handled, m.handling)
	return m
}

// Observe records one finished RPC; kind is "unary" or "stream" (a streamed response).
func (m *RPCMetrics) Observe(fullMethod, kind string, code codes.Code, took time.Duration) {
	if m == nil {
		return
	}
	service, method := splitMethod(fullMethod)
	m.handled.WithLabelValues(service, method, kind, CodeLabel(code)).Inc()
	m.handling.WithLabelValues(service, method, kind).Observe(took.Seconds())
}

// "/pkg.Service/Method" -> ("pkg.Service", "Method").
func splitMethod(fullMethod string) (string, string) {
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return service, method
}

// CodeLabel is the grpc_code label value as v1 writes it: the code's name in CamelCase
// ("OK", "NotFound", "DeadlineExceeded", "Cancelled").
func CodeLabel(c codes.Code) string {
	name := CodeName(c)
	if name == "OK" {
		return name
	}
	var b strings.Builder
	for _, part := range strings.Split(name, "_") {
		b.WriteString(part[:1] + strings.ToLower(part[1:]))
	}
	return b.String()
}

// NewRegistry is the process's registry: the RPC metrics plus the Go runtime's and the
// process's own collectors (v1's default registry has the Python equivalents).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsEndpoint serves /metrics over HTTP.
type MetricsEndpoint struct {
	Host   string
	Port   int
	server *http.Server
	once   sync.Once
}

// URL is where Prometheus scrapes.
func (e *MetricsEndpoint) URL() string {
	return fmt.Sprintf("http://%s/metrics", net.JoinHostPort(e.Host, strconv.Itoa(e.Port)))
}

// StartMetricsEndpoint serves reg at http://host:port/metrics (port 0: a free port).
func StartMetricsEndpoint(host string, port int, reg *prometheus.Registry, log *slog.Logger) (*MetricsEndpoint, error) {
	listener, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, &StartupError{Err: fmt.Errorf("cannot serve metrics on %s:%d: %w", host, port, err)}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics.failed", "error", err.Error())
		}
	}()
	return &MetricsEndpoint{Host: host, Port: listener.Addr().(*net.TCPAddr).Port, server: server}, nil
}

// Close stops the endpoint (after the gRPC server: the last scrape may come while draining).
func (e *MetricsEndpoint) Close() {
	if e == nil {
		return
	}
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.server.Shutdown(ctx)
	})
}
