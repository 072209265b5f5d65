// Command recommendation-go is recommendation v2: the RecommendationService contract
// (proto/meshmart/recommendation/v1) in Go, with v1's rules, settings and runtime
// behaviour, run beside the Python v1 instances under the same Consul service name.
//
// Exit codes are v1's (services/kit/server.py run()): 0 after a clean shutdown, 2 for a
// configuration error (the message names the setting), 1 if the server could not start
// or crashed.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	catalogv1 "meshmart.local/gen/go/meshmart/catalog/v1"
	orderv1 "meshmart.local/gen/go/meshmart/order/v1"
	userv1 "meshmart.local/gen/go/meshmart/user/v1"
	"meshmart.local/services/recommendation-go/internal/config"
	"meshmart.local/services/recommendation-go/internal/kit"
	"meshmart.local/services/recommendation-go/internal/recommend"
	"meshmart.local/services/recommendation-go/internal/servicer"
	"meshmart.local/services/recommendation-go/internal/upstreams"
)

// serviceName is the Consul service name: v2 is another release of the same service.
const serviceName = "recommendation"

// grace bounds in-flight RPCs after the drain, as v1's serve(grace=10.0).
const grace = 10 * time.Second

func main() { os.Exit(run(config.FromEnviron(os.Environ()), os.Stderr)) }

func run(env config.Env, stderr io.Writer) int {
	// Until the config is read the identity is the bare service name, as in v1.
	log := kit.NewLogger(stderr, serviceName, serviceName, slog.LevelInfo)
	cfg, err := config.LoadService(serviceName, env)
	if err != nil {
		return configInvalid(log, err)
	}
	log = kit.NewLogger(stderr, cfg.Name, cfg.InstanceID, kit.ParseLevel(cfg.LogLevel))
	slog.SetDefault(log)
	settings, err := config.LoadRecommendation(env)
	if err != nil {
		return configInvalid(log, err)
	}
	// The settings are read in v1's order, so a process with several bad ones names the
	// same one first: tracing and the upstreams (connect), then metrics and mesh (serve).
	tracingSettings, err := config.LoadTracing(env)
	if err != nil {
		return configInvalid(log, err)
	}
	orderTarget, err := cfg.Upstream("order")
	if err != nil {
		return configInvalid(log, err)
	}
	catalogTarget, err := cfg.Upstream("catalog")
	if err != nil {
		return configInvalid(log, err)
	}
	userTarget, err := cfg.Upstream("user")
	if err != nil {
		return configInvalid(log, err)
	}
	metricsPortSetting, err := config.MetricsPort(env)
	if err != nil {
		return configInvalid(log, err)
	}
	mesh, err := config.LoadMesh(env)
	if err != nil {
		return configInvalid(log, err)
	}

	// Spans to Zipkin when MESHMART_ZIPKIN_URL is set (v1: services/kit/tracing.py).
	var tracing *kit.Tracing
	if tracingSettings.ZipkinURL != "" {
		tracing, err = kit.NewTracing(cfg.Name, cfg.InstanceID, tracingSettings.ZipkinURL, tracingSettings.SampleRatio)
		if err != nil {
			return configInvalid(log, err)
		}
		defer tracing.Shutdown() // export the last batch
		log.Info("tracing.enabled", "zipkin", tracingSettings.ZipkinURL, "sample_ratio", tracingSettings.SampleRatio)
	}
	// RED metrics of every RPC; /metrics when MESHMART_METRICS_PORT is set, its port
	// announced in the Consul registration (v1: services/kit/metrics.py).
	registry := kit.NewRegistry()
	rpcMetrics := kit.NewRPCMetrics(registry)
	metricsPort := -1
	if metricsPortSetting >= 0 {
		// On the address Prometheus reaches (in a pod: the pod's, not its loopback).
		endpoint, err := kit.StartMetricsEndpoint(config.PublicHost(cfg, mesh), metricsPortSetting, registry, log)
		if err != nil {
			log.Error("server.start_failed", "error", err.Error())
			return 1
		}
		defer endpoint.Close()
		metricsPort = endpoint.Port
		log.Info("metrics.serving", "url", endpoint.URL())
	}

	// Channels are lazy (nothing is dialled before the first call), and closed only after
	// Serve returns: in-flight RPCs use them until drained.
	orderConn, err := dial(orderTarget, tracing)
	if err != nil {
		return configInvalid(log, err)
	}
	defer orderConn.Close()
	catalogConn, err := dial(catalogTarget, tracing)
	if err != nil {
		return configInvalid(log, err)
	}
	defer catalogConn.Close()
	userConn, err := dial(userTarget, tracing)
	if err != nil {
		return configInvalid(log, err)
	}
	defer userConn.Close()

	recommender := recommend.New(
		upstreams.OrderHistory{
			Client:    orderv1.NewOrderServiceClient(orderConn),
			Timeout:   settings.OrderTimeout,
			MaxOrders: settings.HistoryOrders,
		},
		upstreams.ProductCatalog{
			Client:      catalogv1.NewCatalogServiceClient(catalogConn),
			Timeout:     settings.CatalogTimeout,
			MaxProducts: settings.CatalogProducts,
		},
		upstreams.UserDirectory{
			Client:  userv1.NewUserServiceClient(userConn),
			Timeout: settings.UserTimeout,
		},
		settings.ModelTTL,
		time.Now,
	)
	svc := servicer.New(recommender, config.ServiceVersion(env))

	var hooks kit.Hooks
	if mesh != nil {
		// Mesh: register in Consul once SERVING, deregister before the drain; off unless
		// MESHMART_CONSUL_HTTP_ADDR is set.
		registration, err := kit.NewRegistration(cfg, *mesh, metricsPort, log)
		if err != nil {
			return configInvalid(log, err)
		}
		hooks = kit.Hooks{OnStart: registration.Register, OnStop: registration.Deregister}
	}

	services := []kit.Service{{Name: servicer.Name, Register: svc.Register}}
	err = kit.Serve(cfg, log, services, hooks, kit.Observability{Metrics: rpcMetrics, Tracing: tracing}, grace)
	var startup *kit.StartupError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &startup):
		log.Error("server.start_failed", "error", err.Error())
	default:
		log.Error("service.crashed", "error", err.Error())
	}
	return 1
}

// dial opens the channel to an upstream's target.
func dial(target string, tracing *kit.Tracing) (*grpc.ClientConn, error) {
	options := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(kit.PropagatingClientInterceptor()),
	}
	if tracing != nil {
		options = append(options, tracing.DialOption())
	}
	// "passthrough": the target is an address, not a name to resolve.
	return grpc.NewClient("passthrough:///"+target, options...)
}

func configInvalid(log *slog.Logger, err error) int {
	log.ErrorContext(context.Background(), "config.invalid", "error", err.Error())
	return 2
}
