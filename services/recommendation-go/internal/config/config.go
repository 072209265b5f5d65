// Package config reads the process's settings once from the environment, with the same
// variables, defaults and error messages as the Python kit (services/kit/config.py,
// services/kit/registration.py, services/recommendation/settings.py): a v2 instance is
// configured exactly like a v1 instance, and a bad setting stops it at start with a
// message naming the variable.
package config

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const upstreamPrefix = "MESHMART_UPSTREAM_"

// Error is a missing or malformed setting; the message names the variable.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

func errorf(format string, args ...any) error { return &Error{msg: fmt.Sprintf(format, args...)} }

// Env is where settings come from (os.Environ() as a map in production).
type Env map[string]string

// FromEnviron turns os.Environ() into an Env.
func FromEnviron(pairs []string) Env {
	env := Env{}
	for _, pair := range pairs {
		if k, v, ok := strings.Cut(pair, "="); ok {
			env[k] = v
		}
	}
	return env
}

// Service is what every service process needs to know about itself and its upstreams.
type Service struct {
	Name       string
	Host       string
	Port       int
	InstanceID string
	LogLevel   string // DEBUG, INFO, WARNING, ERROR or CRITICAL
	// Between NOT_SERVING and stopping the listener: long enough for health checkers
	// (Consul, Envoy) to notice.
	Drain     time.Duration
	Upstreams map[string]string // upstream name -> host:port
	// The mesh identities whose x-meshmart-user-id is believed (MESHMART_USER_ASSERTERS,
	// services/kit/config.py's user_asserters); nil without a mesh in front.
	UserAsserters map[string]bool
}

// Address is host:port of the gRPC listener.
func (s Service) Address() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Upstream is the gRPC target of upstream name, or an error naming its variable.
func (s Service) Upstream(name string) (string, error) {
	if target, ok := s.Upstreams[name]; ok {
		return target, nil
	}
	return "", errorf("%s is required (host:port of the %s upstream)", UpstreamVariable(name), name)
}

// UpstreamVariable is the variable that holds upstream name's target.
func UpstreamVariable(name string) string {
	return upstreamPrefix + strings.ReplaceAll(strings.ToUpper(name), "-", "_")
}

var logLevels = []string{"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}

// LoadService reads the Service config of service name.
func LoadService(name string, env Env) (Service, error) {
	port, err := env.Int("MESHMART_PORT", nil, ptr(1), ptr(65535))
	if err != nil {
		return Service{}, err
	}
	level := strings.ToUpper(env.Str("MESHMART_LOG_LEVEL", "INFO"))
	if !contains(logLevels, level) {
		return Service{}, errorf("MESHMART_LOG_LEVEL must be one of %s, got %s", strings.Join(logLevels, ", "), pyRepr(level))
	}
	drain, err := env.Float("MESHMART_DRAIN_SECONDS", 1.0, ptr(0.0), nil)
	if err != nil {
		return Service{}, err
	}
	upstreams, err := env.upstreams()
	if err != nil {
		return Service{}, err
	}
	asserters, err := env.userAsserters()
	if err != nil {
		return Service{}, err
	}
	return Service{
		Name:       name,
		Host:       env.Str("MESHMART_HOST", "127.0.0.1"),
		Port:       port,
		InstanceID: env.Str("MESHMART_INSTANCE_ID", fmt.Sprintf("%s-%d", name, port)),
		LogLevel:   level,
		Drain:      seconds(drain),
		Upstreams:  upstreams,

		UserAsserters: asserters,
	}, nil
}

var serviceName = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)

// userAsserters reads MESHMART_USER_ASSERTERS ("edge,order,..."): nil when unset.
func (env Env) userAsserters() (map[string]bool, error) {
	raw, ok := env.lookup("MESHMART_USER_ASSERTERS")
	if !ok {
		return nil, nil
	}
	names := map[string]bool{}
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !serviceName.MatchString(name) {
			names = nil
			break
		}
		names[name] = true
	}
	if len(names) == 0 {
		return nil, errorf("MESHMART_USER_ASSERTERS must be Consul service names joined by ',', got %s", pyRepr(raw))
	}
	return names, nil
}

var hostPort = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]+)$`)

func (env Env) upstreams() (map[string]string, error) {
	keys := make([]string, 0, len(env))
	for key := range env {
		keys = append(keys, key)
	}
	sort.Strings(keys) // the first bad one is reported, the same one every time
	out := map[string]string{}
	for _, key := range keys {
		if !strings.HasPrefix(key, upstreamPrefix) || key == upstreamPrefix {
			continue
		}
		value := strings.TrimSpace(env[key])
		m := hostPort.FindStringSubmatch(value)
		port := 0
		if m != nil {
			port, _ = strconv.Atoi(m[2])
		}
		if m == nil || port < 1 || port > 65535 {
			return nil, errorf("%s must be host:port with a port 1-65535, got %s", key, pyRepr(env[key]))
		}
		name := strings.ReplaceAll(strings.ToLower(key[len(upstreamPrefix):]), "_", "-")
		out[name] = value
	}
	return out, nil
}

// Recommendation holds recommendation's own settings (v1: services/recommendation/settings.py).
type Recommendation struct {
	// Budget for reading the whole order history (all its pages together).
	OrderTimeout time.Duration
	// Budget for one catalog lookup (GetProducts in parallel, or a full ListProducts scan).
	CatalogTimeout time.Duration
	// Budget for looking the user up (GetUser, side by side with the history read).
	UserTimeout time.Duration
	// How long a built co-occurrence model is reused (see recommend.Recommender for why).
	ModelTTL time.Duration
	// How many of the newest orders the model learns from.
	HistoryOrders int
	// Upper bound on products read when ranking the catalog by popularity.
	CatalogProducts int
}

// LoadRecommendation reads the MESHMART_RECOMMENDATION_* settings.
func LoadRecommendation(env Env) (Recommendation, error) {
	var r Recommendation
	orderMS, err := env.Int("MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS", ptr(400), ptr(1), nil)
	if err != nil {
		return r, err
	}
	catalogMS, err := env.Int("MESHMART_RECOMMENDATION_CATALOG_TIMEOUT_MS", ptr(300), ptr(1), nil)
	if err != nil {
		return r, err
	}
	userMS, err := env.Int("MESHMART_RECOMMENDATION_USER_TIMEOUT_MS", ptr(300), ptr(1), nil)
	if err != nil {
		return r, err
	}
	ttl, err := env.Float("MESHMART_RECOMMENDATION_MODEL_TTL_S", 30.0, ptr(0.0), nil)
	if err != nil {
		return r, err
	}
	history, err := env.Int("MESHMART_RECOMMENDATION_HISTORY_ORDERS", ptr(500), ptr(1), nil)
	if err != nil {
		return r, err
	}
	products, err := env.Int("MESHMART_RECOMMENDATION_CATALOG_PRODUCTS", ptr(1000), ptr(1), nil)
	if err != nil {
		return r, err
	}
	return Recommendation{
		OrderTimeout:    time.Duration(orderMS) * time.Millisecond,
		CatalogTimeout:  time.Duration(catalogMS) * time.Millisecond,
		UserTimeout:     time.Duration(userMS) * time.Millisecond,
		ModelTTL:        seconds(ttl),
		HistoryOrders:   history,
		CatalogProducts: products,
	}, nil
}

// Tracing holds the tracing settings (v1: services/kit/tracing.py).
type Tracing struct {
	// MESHMART_ZIPKIN_URL: where spans go (Zipkin v2 JSON); "" = tracing off.
	ZipkinURL string
	// MESHMART_TRACE_SAMPLE_RATIO: the share of new traces recorded (0-1).
	SampleRatio float64
}

// LoadTracing reads MESHMART_ZIPKIN_URL and MESHMART_TRACE_SAMPLE_RATIO.
func LoadTracing(env Env) (Tracing, error) {
	ratio, err := env.Float("MESHMART_TRACE_SAMPLE_RATIO", 1.0, ptr(0.0), ptr(1.0))
	if err != nil {
		return Tracing{}, err
	}
	return Tracing{ZipkinURL: env.Str("MESHMART_ZIPKIN_URL", ""), SampleRatio: ratio}, nil
}

// MetricsPort is MESHMART_METRICS_PORT: /metrics on the service's host at this port (0: a
// free port), or -1 when unset (no endpoint; v1: services/kit/metrics.py).
func MetricsPort(env Env) (int, error) {
	return env.Int("MESHMART_METRICS_PORT", ptr(-1), ptr(-1), ptr(65535))
}

// Mesh holds the settings of self-registration in Consul, written by `python -m
// tools.mesh` (the same variables services/kit/registration.py reads).
type Mesh struct {
	ConsulAddr  string // host:port of the agent's HTTP API
	SidecarPort int    // the sidecar's public (mTLS) listener port
	MetricsAddr string // host:port of the sidecar's Prometheus listener; "" for none
	Version     string // meta.version of the registration (the resolver's subset)
	// Zipkin's span endpoint: the sidecar then reports its own spans there too.
	ZipkinURL string
	// How long registration keeps retrying while the agent is not up yet.
	RegisterTimeout time.Duration
	// The file holding the instance's Consul ACL token; "" for none (no ACLs).
	TokenFile string
	// MESHMART_SERVICE_ADDRESS: where the instance is registered when it does not bind it
	// (in a pod: it binds the pod's 127.0.0.1; its sidecar and /metrics the pod's
	// address). "": its host (services/kit/registration.py's service_address).
	ServiceAddress string
}

// PublicHost is where others reach an instance of cfg: mesh's ServiceAddress, else cfg.Host.
func PublicHost(cfg Service, mesh *Mesh) string {
	if mesh != nil && mesh.ServiceAddress != "" {
		return mesh.ServiceAddress
	}
	return cfg.Host
}

// LoadMesh returns nil when MESHMART_CONSUL_HTTP_ADDR is unset (no mesh: unit tests,
// contract tests, `make run-local`).
func LoadMesh(env Env) (*Mesh, error) {
	addr := env.Str("MESHMART_CONSUL_HTTP_ADDR", "")
	if addr == "" {
		return nil, nil
	}
	i := strings.LastIndex(addr, ":")
	if i <= 0 || !isDigits(addr[i+1:]) {
		return nil, errorf("MESHMART_CONSUL_HTTP_ADDR must be host:port, got %s", pyRepr(addr))
	}
	sidecar, err := env.Int("MESHMART_SIDECAR_PORT", nil, ptr(1), ptr(65535))
	if err != nil {
		return nil, err
	}
	timeout, err := env.Float("MESHMART_CONSUL_REGISTER_TIMEOUT", 30.0, ptr(0.0), nil)
	if err != nil {
		return nil, err
	}
	return &Mesh{
		ConsulAddr:      addr,
		SidecarPort:     sidecar,
		MetricsAddr:     env.Str("MESHMART_SIDECAR_METRICS_ADDR", ""),
		Version:         ServiceVersion(env),
		ZipkinURL:       env.Str("MESHMART_ZIPKIN_URL", ""),
		RegisterTimeout: seconds(timeout),
		TokenFile:       env.Str("MESHMART_CONSUL_TOKEN_FILE", ""),
		ServiceAddress:  env.Str("MESHMART_SERVICE_ADDRESS", ""),
	}, nil
}

// ServiceVersion is the instance's release label (meta.version in Consul, and what the
// x-meshmart-version response header reports).
func ServiceVersion(env Env) string { return env.Str("MESHMART_SERVICE_VERSION", "dev") }

// --- typed readers (services/kit/config.py env_str / env_int / env_float) -------------

func (env Env) lookup(name string) (string, bool) {
	value, ok := env[name]
	value = strings.TrimSpace(value)
	// An empty variable is treated as unset: `FOO= cmd` is a common way to clear one.
	return value, ok && value != ""
}

// Str is a string setting with a default.
func (env Env) Str(name, def string) string {
	if value, ok := env.lookup(name); ok {
		return value
	}
	return def
}

// Int is an integer setting within [minimum, maximum]; required when def is nil.
func (env Env) Int(name string, def, minimum, maximum *int) (int, error) {
	raw, ok := env.lookup(name)
	if !ok {
		if def == nil {
			return 0, errorf("%s is required (%s)", name, intShape(name, minimum, maximum))
		}
		return *def, nil
	}
	value, err := strconv.Atoi(raw)
	if err != nil || (minimum != nil && value < *minimum) || (maximum != nil && value > *maximum) {
		return 0, errorf("%s, got %s", intShape(name, minimum, maximum), pyRepr(raw))
	}
	return value, nil
}

func intShape(name string, minimum, maximum *int) string {
	switch {
	case minimum != nil && maximum != nil && strings.HasSuffix(name, "_PORT"):
		return fmt.Sprintf("%s must be an integer port %d-%d", name, *minimum, *maximum)
	case minimum != nil && maximum != nil:
		return fmt.Sprintf("%s must be an integer %d-%d", name, *minimum, *maximum)
	case minimum != nil:
		return fmt.Sprintf("%s must be an integer >= %d", name, *minimum)
	case maximum != nil:
		return fmt.Sprintf("%s must be an integer <= %d", name, *maximum)
	}
	return name + " must be an integer"
}

// Float is a number setting within [minimum, maximum].
func (env Env) Float(name string, def float64, minimum, maximum *float64) (float64, error) {
	raw, ok := env.lookup(name)
	if !ok {
		return def, nil
	}
	bounds := ""
	if minimum != nil || maximum != nil {
		bounds = fmt.Sprintf(" in [%s, %s]", pyFloat(minimum), pyFloat(maximum))
	}
	value, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(value) || (minimum != nil && value < *minimum) || (maximum != nil && value > *maximum) {
		return 0, errorf("%s must be a number%s, got %s", name, bounds, pyRepr(raw))
	}
	return value, nil
}

func seconds(s float64) time.Duration {
	if s > math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}

func ptr[T any](v T) *T { return &v }

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// pyRepr quotes like Python's repr() of a str, so messages read the same in v1 and v2.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

func pyFloat(f *float64) string {
	if f == nil {
		return "None"
	}
	s := strconv.FormatFloat(*f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}
