// Package sinks holds hookroute's integrations: one file and one test per
// sink kind, all behind router.Sink. The Registry builds them from their
// config blocks and tells the router which message fields each kind takes.
package sinks

import (
	"fmt"
	"net/http"
	"sort"
	"sync"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
)

// kind is one registered sink kind.
type kind struct {
	build  func(r *Registry, name string, node *yaml.Node) (router.Sink, error)
	fields []router.FieldSpec
}

var kinds = map[string]kind{}

// register adds a kind. Each sink declares a typed config struct C, decoded
// strictly (unknown keys are errors with positions); newSink may return a
// router.ConfigError for field-level problems.
func register[C any, S router.Sink](name string, fields []router.FieldSpec, defaults func() C, newSink func(r *Registry, sink string, c C) (S, error)) {
	kinds[name] = kind{
		fields: fields,
		build: func(r *Registry, sink string, node *yaml.Node) (router.Sink, error) {
			c := defaults()
			if err := router.DecodeStrict(node, "", &c); err != nil {
				return nil, err
			}
			return newSink(r, sink, c)
		},
	}
}

// Kinds lists the registered sink kinds.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Registry builds sinks. It also owns what sinks of one process share:
// rate limiters keyed by destination (so two rules, or two sinks, posting to
// one Slack channel share its one-message-a-second budget) and the HTTP
// client.
type Registry struct {
	// Client is the HTTP client every sink uses; it never follows
	// redirects.
	Client *http.Client

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// NewRegistry returns a Registry with a client that does not follow
// redirects (a redirect from a sink is a failure, and following one could
// lead anywhere).
func NewRegistry() *Registry {
	return &Registry{
		Client: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConnsPerHost: 64, // keep-alive pools sized for the workers
				IdleConnTimeout:     90e9,
				ForceAttemptHTTP2:   true,
			},
		},
		limiters: map[string]*rate.Limiter{},
	}
}

// Build implements router.SinkFactory.
func (r *Registry) Build(k, name string, node *yaml.Node) (router.Sink, error) {
	kd, ok := kinds[k]
	if !ok {
		return nil, fmt.Errorf("unknown sink type %q", k)
	}
	return kd.build(r, name, node)
}

// RouteFields implements router.SinkFactory.
func (r *Registry) RouteFields(k string) ([]router.FieldSpec, bool) {
	kd, ok := kinds[k]
	return kd.fields, ok
}

// limiter returns the shared limiter for key, creating it with limit and
// burst on first use.
func (r *Registry) limiter(key string, limit rate.Limit, burst int) *rate.Limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.limiters[key]
	if !ok {
		l = rate.NewLimiter(limit, burst)
		r.limiters[key] = l
	}
	return l
}
