// Package testkit holds what the engine's and the rules' tests share: a
// sink factory whose sinks record what they get, and a key pair for
// signing test events. It is for tests only.
package testkit

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

// FakeFactory builds "fake" sinks that record deliveries, so router tests
// need no real integration. Sinks holds them by name.
type FakeFactory struct{ Sinks map[string]*FakeSink }

// FakeSink records deliveries; it fails with Errs in order, then succeeds.
type FakeSink struct {
	mu   sync.Mutex
	got  []*router.Delivery
	Errs []error // returned in order, then nil
}

// Deliver records d.
func (s *FakeSink) Deliver(_ context.Context, d *router.Delivery) (router.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, d)
	if len(s.Errs) > 0 {
		err := s.Errs[0]
		s.Errs = s.Errs[1:]
		return router.Result{StatusCode: 500}, err
	}
	return router.Result{StatusCode: 200}, nil
}

// Deliveries returns what the sink got so far.
func (s *FakeSink) Deliveries() []*router.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*router.Delivery(nil), s.got...)
}

// FakeConfig is a fake sink's config.
type FakeConfig struct {
	Token router.Secret `yaml:"token"`
	Note  string        `yaml:"note"`
}

// Build makes a fake sink.
func (f *FakeFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	var c FakeConfig
	if err := config.DecodeStrict(node, "", &c); err != nil {
		return nil, err
	}
	s := &FakeSink{}
	if f.Sinks == nil {
		f.Sinks = map[string]*FakeSink{}
	}
	f.Sinks[name] = s
	return s, nil
}

// RouteFields: a fake route needs text and may set subject; text escapes
// by bracketing, so a test sees what was escaped.
func (f *FakeFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	if kind != "fake" {
		return nil, false
	}
	return []router.FieldSpec{
		{Name: "text", Required: true, Escape: func(s string) string { return "[" + s + "]" }},
		{Name: "subject"},
	}, true
}

// Key signs test events; PublicPEM is its public half as a config would
// give it.
var Key, PublicPEM = func() (*rsa.PrivateKey, string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}()
