package config

import (
	"testing"
	"time"
)

// The settings read like v1's: same variables, defaults, and messages naming the variable
// (services/kit/config.py). tests/contract checks the process's exit code 2 end to end.

func TestDefaultsAreV1s(t *testing.T) {
	env := Env{"MESHMART_PORT": "7182", "MESHMART_UPSTREAM_ORDER": " 127.0.0.1:30825 "}
	cfg, err := LoadService("recommendation", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "127.0.0.1" || cfg.InstanceID != "recommendation-7182" || cfg.LogLevel != "INFO" || cfg.Drain != time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.Upstreams["order"] != "127.0.0.1:30825" {
		t.Fatalf("upstreams: %v", cfg.Upstreams)
	}
	rec, err := LoadRecommendation(env)
	if err != nil {
		t.Fatal(err)
	}
	want := Recommendation{
		OrderTimeout:    400 * time.Millisecond,
		CatalogTimeout:  300 * time.Millisecond,
		UserTimeout:     300 * time.Millisecond,
		ModelTTL:        30 * time.Second,
		HistoryOrders:   500,
		CatalogProducts: 1000,
	}
	if rec != want {
		t.Fatalf("got %+v, want %+v", rec, want)
	}
	if mesh, err := LoadMesh(env); mesh != nil || err != nil {
		t.Fatalf("no MESHMART_CONSUL_HTTP_ADDR: no mesh, got %+v %v", mesh, err)
	}
	if port, err := MetricsPort(env); port != -1 || err != nil {
		t.Fatalf("metrics port %d %v", port, err)
	}
}

func TestABadSettingIsNamedAsV1NamesIt(t *testing.T) {
	cases := []struct {
		env  Env
		load func(Env) error
		want string
	}{
		{Env{}, service, "MESHMART_PORT is required (MESHMART_PORT must be an integer port 1-65535)"},
		{Env{"MESHMART_PORT": "70000"}, service, "MESHMART_PORT must be an integer port 1-65535, got '70000'"},
		{Env{"MESHMART_PORT": "1", "MESHMART_LOG_LEVEL": "loud"}, service,
			"MESHMART_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"},
		{Env{"MESHMART_PORT": "1", "MESHMART_UPSTREAM_ORDER": "nowhere"}, service,
			"MESHMART_UPSTREAM_ORDER must be host:port with a port 1-65535, got 'nowhere'"},
		{Env{"MESHMART_DRAIN_SECONDS": "-1", "MESHMART_PORT": "1"}, service,
			"MESHMART_DRAIN_SECONDS must be a number in [0.0, None], got '-1'"},
		{Env{"MESHMART_RECOMMENDATION_USER_TIMEOUT_MS": "0"}, recommendation,
			"MESHMART_RECOMMENDATION_USER_TIMEOUT_MS must be an integer >= 1, got '0'"},
		{Env{"MESHMART_RECOMMENDATION_HISTORY_ORDERS": "0"}, recommendation,
			"MESHMART_RECOMMENDATION_HISTORY_ORDERS must be an integer >= 1, got '0'"},
		{Env{"MESHMART_TRACE_SAMPLE_RATIO": "2"}, tracing,
			"MESHMART_TRACE_SAMPLE_RATIO must be a number in [0.0, 1.0], got '2'"},
		{Env{"MESHMART_CONSUL_HTTP_ADDR": "consul"}, mesh,
			"MESHMART_CONSUL_HTTP_ADDR must be host:port, got 'consul'"},
		{Env{"MESHMART_CONSUL_HTTP_ADDR": "127.0.0.1:8500"}, mesh,
			"MESHMART_SIDECAR_PORT is required (MESHMART_SIDECAR_PORT must be an integer port 1-65535)"},
	}
	for _, c := range cases {
		err := c.load(c.env)
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: got %v, want %q", c.env, err, c.want)
		}
	}
}

func TestAMissingUpstreamIsNamedByItsVariable(t *testing.T) {
	cfg, err := LoadService("recommendation", Env{"MESHMART_PORT": "1"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"catalog": "MESHMART_UPSTREAM_CATALOG is required (host:port of the catalog upstream)",
		"user":    "MESHMART_UPSTREAM_USER is required (host:port of the user upstream)",
	} {
		if _, err := cfg.Upstream(name); err == nil || err.Error() != want {
			t.Fatalf("%s: got %v, want %q", name, err, want)
		}
	}
}

func service(env Env) error        { _, err := LoadService("recommendation", env); return err }
func recommendation(env Env) error { _, err := LoadRecommendation(env); return err }
func tracing(env Env) error        { _, err := LoadTracing(env); return err }
func mesh(env Env) error           { _, err := LoadMesh(env); return err }
