package kit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"meshmart.local/services/recommendation-go/internal/config"
)

// Bounds each stop hook: a registry that does not answer must not keep a stopping
// process alive until the supervisor's SIGKILL.
const hookTimeout = 5 * time.Second

// Service is one gRPC service to serve: its full name and how to add it to a server.
type Service struct {
	Name     string // e.g. "meshmart.recommendation.v1.RecommendationService"
	Register func(*grpc.Server)
}

// Hooks run around serving: OnStart once the server is SERVING (register in Consul),
// OnStop right after health turns NOT_SERVING (deregister).
type Hooks struct {
	OnStart func(context.Context) error
	OnStop  func(context.Context) error
}

// Observability is what the server reports to: RPC metrics and tracing (either may be nil).
type Observability struct {
	Metrics *RPCMetrics
	Tracing *Tracing
}

// StartupError: the server could not start (e.g. the port is taken); exit code 1.
type StartupError struct{ Err error }

func (e *StartupError) Error() string { return e.Err.Error() }

// Serve serves services on cfg.Address() until SIGTERM/SIGINT, then shuts down like v1's
// serve(): health NOT_SERVING -> OnStop (deregistration) -> drain -> graceful stop, bounded
// by grace. It returns once the server has stopped.
func Serve(cfg config.Service, log *slog.Logger, services []Service, hooks Hooks, obs Observability, grace time.Duration) error {
	listener, err := net.Listen("tcp", cfg.Address())
	if err != nil {
		return &StartupError{Err: fmt.Errorf("cannot listen on %s: %w", cfg.Address(), err)}
	}
	options := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(UnaryServerInterceptor(log, obs.Metrics, cfg.UserAsserters)),
		grpc.ChainStreamInterceptor(StreamServerInterceptor(log, obs.Metrics, cfg.UserAsserters)),
	}
	if obs.Tracing != nil {
		// A stats handler runs before the interceptors: the span is current in them.
		options = append(options, obs.Tracing.ServerOption())
	}
	server := grpc.NewServer(options...)
	names := make([]string, 0, len(services))
	for _, s := range services {
		s.Register(server)
		names = append(names, s.Name)
	}
	// The official health service: overall ("") and per service, what Consul's gRPC
	// check and operators' grpcurl ask.
	healthServer := health.NewServer()
	healthpb.RegisterHealthServer(server, healthServer)
	// Reflection lists every registered service (ours, health, reflection).
	reflection.Register(server)

	// Signals are caught before serving, so a SIGTERM during start still shuts down cleanly.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	for _, name := range append([]string{""}, names...) {
		healthServer.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	log.Info("server.started", "address", cfg.Address(), "services", names)

	var stopping atomic.Bool
	stopRequested := make(chan struct{})
	go func() {
		for sig := range signals {
			if stopping.Swap(true) {
				log.Info("server.signal_ignored", "signal", signalName(sig), "reason", "stopping")
				continue
			}
			log.Info("server.signal", "signal", signalName(sig))
			close(stopRequested)
		}
	}()

	var startErr error
	if hooks.OnStart != nil {
		startCtx, cancel := context.WithCancel(context.Background())
		go func() { // a signal during registration's retries ends them
			select {
			case <-stopRequested:
				cancel()
			case <-startCtx.Done():
			}
		}()
		startErr = hooks.OnStart(startCtx)
		cancel()
	}
	if startErr == nil {
		select {
		case <-stopRequested:
		case err := <-served: // the listener failed under us
			return &StartupError{Err: fmt.Errorf("serving on %s: %w", cfg.Address(), err)}
		}
	}
	stopping.Store(true)
	shutdown(cfg, log, server, healthServer, hooks, grace)
	return startErr
}

func shutdown(cfg config.Service, log *slog.Logger, server *grpc.Server, healthServer *health.Server, hooks Hooks, grace time.Duration) {
	// Order matters: stop advertising first, then leave the registry, then give load
	// balancers time to notice while still answering, and only then stop accepting.
	healthServer.Shutdown()
	log.Info("server.draining", "drain_seconds", cfg.Drain.Seconds(), "grace_seconds", grace.Seconds())
	if hooks.OnStop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
		if err := hooks.OnStop(ctx); err != nil {
			// A failed deregistration must not prevent a clean stop; Consul's check marks
			// the instance critical anyway.
			log.Error("server.on_stop_failed", "error", err.Error())
		}
		cancel()
	}
	time.Sleep(cfg.Drain)
	log.Info("server.stopping", "grace_seconds", grace.Seconds())
	stopped := make(chan struct{})
	go func() {
		server.GracefulStop() // refuses new RPCs, waits for in-flight ones
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(grace):
		server.Stop() // what is still running after the grace period is cut off
		<-stopped
	}
	log.Info("server.stopped")
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}
