package dispatch

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"reflect"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

// fakeFactory builds "fake" sinks that record deliveries, so router tests
// need no real integration.
type fakeFactory struct{ sinks map[string]*fakeSink }

type fakeSink struct {
	mu   sync.Mutex
	got  []*router.Delivery
	errs []error // returned in order, then nil
}

func (s *fakeSink) Deliver(_ context.Context, d *router.Delivery) (router.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, d)
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return router.Result{StatusCode: 500}, err
	}
	return router.Result{StatusCode: 200}, nil
}

func (s *fakeSink) deliveries() []*router.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*router.Delivery(nil), s.got...)
}

type fakeConfig struct {
	Token router.Secret `yaml:"token"`
	Note  string        `yaml:"note"`
}

func (f *fakeFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	var c fakeConfig
	if err := config.DecodeStrict(node, "", &c); err != nil {
		return nil, err
	}
	s := &fakeSink{}
	if f.sinks == nil {
		f.sinks = map[string]*fakeSink{}
	}
	f.sinks[name] = s
	return s, nil
}

func (f *fakeFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	if kind != "fake" {
		return nil, false
	}
	return []router.FieldSpec{
		{Name: "text", Required: true, Escape: func(s string) string { return "[" + s + "]" }},
		{Name: "subject"},
	}, true
}

// testKey signs test events; testPublicPEM is its public half as a
// config would give it.
var testKey, testPublicPEM = func() (*rsa.PrivateKey, string) {
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

func typeOf(v any) reflect.Type { return reflect.TypeOf(v) }
