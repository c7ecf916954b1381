// Package sinks holds hookroute's integrations: one file and one test per
// sink kind, all behind router.Sink. The Registry builds them from their
// config blocks and tells the router which message fields each kind takes.
package sinks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/egress"
)

// kind is one registered sink kind.
type kind struct {
	build  func(r *Registry, name string, node *yaml.Node) (router.Sink, error)
	fields []router.FieldSpec
}

var kinds = map[string]kind{}

// register adds a kind; each sink's file calls it from init. Each sink
// declares a typed config struct C, decoded strictly (unknown keys are
// errors with positions); newSink may return a router.ConfigError for
// field-level problems. Two kinds of one name are a programming mistake
// that must not depend on which init ran last, so it panics, as the
// router's registerSource does for source kinds.
func register[C any, S router.Sink](name string, fields []router.FieldSpec, defaults func() C, newSink func(r *Registry, sink string, c C) (S, error)) {
	if _, dup := kinds[name]; dup {
		panic("sinks: register: sink kind " + name + " is registered twice")
	}
	kinds[name] = kind{
		fields: fields,
		build: func(r *Registry, sink string, node *yaml.Node) (router.Sink, error) {
			c := defaults()
			if err := config.DecodeStrict(node, "", &c); err != nil {
				return nil, err
			}
			return newSink(r, sink, c)
		},
	}
}

// Kinds lists the registered sink kinds.
func Kinds() []string { return slices.Sorted(maps.Keys(kinds)) }

// Registry builds sinks. It also owns what the sinks of one process share:
// rate limiters keyed by destination (so two rules, or two sinks, posting to
// one Slack channel share its one-message-a-second budget), the HTTP
// connection pool, the egress guard every outbound connection passes, and
// Zoho Desk access tokens.
type Registry struct {
	// Client is the HTTP client every sink uses. It never follows
	// redirects (a redirect from a sink is a failure, and following one
	// could lead anywhere), verifies certificates, and dials only
	// addresses the egress guard allows.
	Client *http.Client

	shared *registryShared
}

// registryShared is what a Registry and its per-sink views (a sink with its
// own CA bundle gets its own Client) have in common.
type registryShared struct {
	mu        sync.Mutex
	limiters  map[string]*rate.Limiter
	guard     atomic.Pointer[egress.Guard]
	transport *http.Transport
	zohoAuths map[string]*zohoAuth // under mu; see zohoAuth
	// slackIDs maps a Slack workspace and channel name to the channel's
	// id, as posts showed it (under mu; see slackSink.channelLimiter).
	slackIDs map[string]string
}

// NewRegistry returns a Registry whose egress guard refuses every private,
// loopback and link-local destination until SetEgressAllow says otherwise.
func NewRegistry() *Registry {
	sh := &registryShared{limiters: map[string]*rate.Limiter{}, zohoAuths: map[string]*zohoAuth{}, slackIDs: map[string]string{}}
	sh.guard.Store(egress.New(nil))
	sh.transport = &http.Transport{
		// No proxy: a proxy would dial on our behalf, out of the guard's
		// sight.
		Proxy: nil,
		// The guard judges the resolved address at dial time, so a DNS
		// answer that changes between check and connect cannot slip by.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return sh.guard.Load().DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64, // keep-alive pools sized for the workers
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		// A request goes out in one write while headers and body fit the
		// buffer. At net/http's 4 KiB default, an http sink's default body
		// (the event view, about 4.5 KiB for a SalesIQ rating) took two
		// write syscalls per delivery, each waking the receiver.
		WriteBufferSize: 16 << 10,
	}
	return &Registry{Client: newClient(sh.transport), shared: sh}
}

func newClient(t http.RoundTripper) *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     t,
	}
}

// SetEgressAllow sets the private ranges sinks may reach (the config's
// egress.allow). It applies to connections dialed from then on, including
// those of sinks already built, so a reload can change it.
func (r *Registry) SetEgressAllow(allow []netip.Prefix) {
	r.shared.guard.Store(egress.New(allow))
}

// Build implements router.SinkFactory. Besides its kind's keys, every sink
// takes ca_file: a PEM bundle of extra CAs its server's certificate may
// chain to (certificates are always verified).
func (r *Registry) Build(k, name string, node *yaml.Node) (router.Sink, error) {
	kd, ok := kinds[k]
	if !ok {
		return nil, fmt.Errorf("unknown sink type %q", k)
	}
	view, err := r.withCA(node)
	if err != nil {
		return nil, err
	}
	return kd.build(view, name, node)
}

// withCA removes ca_file from node and, when it was set, returns a view of
// r whose client also trusts that bundle.
func (r *Registry) withCA(node *yaml.Node) (*Registry, error) {
	var caNode *yaml.Node
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == "ca_file" {
			caNode = node.Content[i+1]
			node.Content = append(node.Content[:i:i], node.Content[i+2:]...)
			break
		}
	}
	if caNode == nil {
		return r, nil
	}
	pem, err := os.ReadFile(caNode.Value)
	if err != nil {
		return nil, config.NodeError(caNode, "ca_file", "%v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, config.NodeError(caNode, "ca_file", "no PEM certificate in the file")
	}
	t := r.shared.transport.Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &Registry{Client: newClient(t), shared: r.shared}, nil
}

// RouteFields implements router.SinkFactory.
func (r *Registry) RouteFields(k string) ([]router.FieldSpec, bool) {
	kd, ok := kinds[k]
	return kd.fields, ok
}

// limiter returns the shared limiter for key, creating it with limit and
// burst on first use.
func (r *Registry) limiter(key string, limit rate.Limit, burst int) *rate.Limiter {
	sh := r.shared
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l, ok := sh.limiters[key]
	if !ok {
		l = rate.NewLimiter(limit, burst)
		sh.limiters[key] = l
	}
	return l
}
