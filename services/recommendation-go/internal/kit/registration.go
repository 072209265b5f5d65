package kit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strconv"
	"time"

	consul "github.com/hashicorp/consul/api"

	"meshmart.local/services/recommendation-go/internal/config"
)

// The same check timing as v1 (services/kit/registration.py): probed every second,
// critical after three failed probes in a row (one late answer on a starved box is not
// a dead instance), and a critical one is removed after a minute.
const (
	checkInterval            = "1s"
	checkTimeout             = "1s"
	checkFailuresBeforeCrit  = 3
	deregisterCriticalAfter  = "1m"
	maxRegisterRetryInterval = 2 * time.Second
)

// Registration registers one instance with the local Consul agent on start and
// deregisters it on stop. The registration is v1's, field for field: same service
// name, a unique instance id, meta.version (v2 here: the resolver's subset), a gRPC
// health check, and a Connect sidecar whose upstreams are the MESHMART_UPSTREAM_*
// listeners.
type Registration struct {
	cfg         config.Service
	mesh        config.Mesh
	metricsPort int // where the process serves /metrics; -1 for nowhere
	client      *consul.Client
	log         *slog.Logger
}

// NewRegistration builds the Consul client for mesh.ConsulAddr (with the ACL token in
// mesh.TokenFile, if any). metricsPort (-1: none)
// goes into the meta, which is how Prometheus finds the endpoint (Consul SD).
func NewRegistration(cfg config.Service, mesh config.Mesh, metricsPort int, log *slog.Logger) (*Registration, error) {
	client, err := consul.NewClient(&consul.Config{
		Address: mesh.ConsulAddr, Scheme: "http", TokenFile: mesh.TokenFile,
	})
	if err != nil {
		return nil, err
	}
	return &Registration{cfg: cfg, mesh: mesh, metricsPort: metricsPort, client: client, log: log}, nil
}

// Service is what is sent to PUT /v1/agent/service/register.
func (r *Registration) Service() *consul.AgentServiceRegistration {
	cfg, mesh := r.cfg, r.mesh
	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	upstreams := make([]consul.Upstream, 0, len(names))
	for _, name := range names {
		host, portText, _ := net.SplitHostPort(cfg.Upstreams[name])
		port, _ := strconv.Atoi(portText)
		upstreams = append(upstreams, consul.Upstream{
			DestinationName: name, LocalBindAddress: host, LocalBindPort: port,
		})
	}
	proxy := &consul.AgentServiceConnectProxyConfig{
		// The sidecar reaches the process on its own address (not Consul's 127.0.0.1
		// default: a test mesh runs on another loopback address).
		LocalServiceAddress: cfg.Host,
		LocalServicePort:    cfg.Port,
		Upstreams:           upstreams,
	}
	sidecarMeta := map[string]string{"version": mesh.Version}
	proxyConfig := map[string]any{}
	if mesh.MetricsAddr != "" {
		// Per instance, since every sidecar on the machine needs its own port.
		proxyConfig["envoy_prometheus_bind_addr"] = mesh.MetricsAddr
		_, port, _ := net.SplitHostPort(mesh.MetricsAddr)
		sidecarMeta["metrics_port"] = port
	}
	if mesh.ZipkinURL != "" {
		for key, value := range EnvoyTracing(mesh.ZipkinURL) {
			proxyConfig[key] = value
		}
	}
	if len(proxyConfig) > 0 {
		proxy.Config = proxyConfig
	}
	meta := map[string]string{"version": mesh.Version, "instance": cfg.InstanceID}
	if r.metricsPort >= 0 {
		meta["metrics_port"] = strconv.Itoa(r.metricsPort)
	}
	public := config.PublicHost(cfg, &mesh)
	sidecarTarget := net.JoinHostPort(public, strconv.Itoa(mesh.SidecarPort))
	if public != cfg.Host {
		// In a pod: Consul's agent runs the check through the sidecar (v1's registration).
		proxy.Expose = consul.ExposeConfig{Checks: true}
	}
	return &consul.AgentServiceRegistration{
		ID:      cfg.InstanceID,
		Name:    cfg.Name,
		Address: public,
		Port:    cfg.Port,
		Tags:    []string{"grpc"},
		Meta:    meta,
		Check: &consul.AgentServiceCheck{
			Name:                           cfg.InstanceID + " gRPC health",
			GRPC:                           cfg.Address(), // overall health ("" service)
			Interval:                       checkInterval,
			Timeout:                        checkTimeout,
			FailuresBeforeCritical:         checkFailuresBeforeCrit,
			DeregisterCriticalServiceAfter: deregisterCriticalAfter,
		},
		Connect: &consul.AgentServiceConnect{
			SidecarService: &consul.AgentServiceRegistration{
				Port: mesh.SidecarPort,
				Meta: sidecarMeta,
				// Replaces Consul's default sidecar checks, whose 10s TCP interval keeps a
				// new sidecar out of its callers' endpoints for up to 10s.
				Checks: consul.AgentServiceChecks{
					// No deregister-after here: a sidecar down for a minute must not lose
					// its registration, or Envoy could not start again for a live process.
					{
						Name:     cfg.InstanceID + " sidecar listening",
						TCP:      sidecarTarget,
						Interval: checkInterval,
					},
					{Name: cfg.InstanceID + " alive", AliasService: cfg.InstanceID},
				},
				Proxy: proxy,
			},
		},
	}
}

// EnvoyTracing is the proxy config that makes the sidecar report its spans to Zipkin
// through Consul 1.14's bootstrap escape hatches, exactly as v1 registers it
// (services/kit/registration.py envoy_tracing, where the reasons are written down).
func EnvoyTracing(zipkinURL string) map[string]string {
	u, err := url.Parse(zipkinURL)
	if err != nil {
		u = &url.URL{}
	}
	path := u.Path
	if path == "" {
		path = "/api/v2/spans"
	}
	host := u.Hostname()
	if host == "" {
		host = "127.0.0.1"
	}
	port := 9411
	if p, err := strconv.Atoi(u.Port()); err == nil {
		port = p
	}
	tracer := map[string]any{"http": map[string]any{
		"name": "envoy.tracers.zipkin",
		"typed_config": map[string]any{
			"@type":                      "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
			"collector_cluster":          "meshmart_zipkin",
			"collector_endpoint":         path,
			"collector_endpoint_version": "HTTP_JSON",
			"shared_span_context":        false,
			"trace_context_option":       "USE_B3_WITH_W3C_PROPAGATION",
		},
	}}
	cluster := map[string]any{
		"name":            "meshmart_zipkin",
		"type":            "STATIC",
		"connect_timeout": "1s",
		"load_assignment": map[string]any{
			"cluster_name": "meshmart_zipkin",
			"endpoints": []any{map[string]any{"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{
				"address": map[string]any{"socket_address": map[string]any{"address": host, "port_value": port}},
			}}}}},
		},
	}
	tracerJSON, _ := json.Marshal(tracer)
	clusterJSON, _ := json.Marshal(cluster)
	return map[string]string{
		"envoy_tracing_json":               string(tracerJSON),
		"envoy_extra_static_clusters_json": string(clusterJSON),
	}
}

// Register retries while the agent is not up yet (supervisord starts Consul and the
// services together), for at most mesh.RegisterTimeout.
func (r *Registration) Register(ctx context.Context) error {
	deadline := time.Now().Add(r.mesh.RegisterTimeout)
	delay := 100 * time.Millisecond
	service := r.Service()
	for {
		// A restarted instance re-registers with the same id: replace, don't accumulate.
		err := r.client.Agent().ServiceRegisterOpts(service, consul.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
		if err == nil {
			break
		}
		if time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("could not register %s with Consul at %s: %w", r.cfg.InstanceID, r.mesh.ConsulAddr, err)
		}
		r.log.Info("consul.register_retry", "error", err.Error(), "retry_in", delay.Seconds())
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		delay = min(delay*2, maxRegisterRetryInterval)
	}
	r.log.Info("consul.registered", "service_id", r.cfg.InstanceID, "sidecar_port", r.mesh.SidecarPort,
		"version", r.mesh.Version, "upstreams", r.cfg.Upstreams)
	return nil
}

// Deregister also removes the sidecar registration (Consul ties it to its parent).
func (r *Registration) Deregister(ctx context.Context) error {
	opts := (&consul.QueryOptions{}).WithContext(ctx)
	if err := r.client.Agent().ServiceDeregisterOpts(r.cfg.InstanceID, opts); err != nil {
		return err
	}
	r.log.Info("consul.deregistered", "service_id", r.cfg.InstanceID)
	return nil
}
