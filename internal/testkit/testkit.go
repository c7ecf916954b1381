// Package testkit holds what the engine's and the rules' tests share: a
// sink factory whose sinks record what they get, and a key pair for
// signing test events. It is for tests only.
package testkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

// FakeFactory builds "fake" sinks that record deliveries, so router tests
// need no real integration. Sinks holds them by name.
type FakeFactory struct{ Sinks map[string]*FakeSink }

// FakeSink records deliveries; it fails with Errs in order, then succeeds.
// With Creates set, a delivery with a dedup key and no remote object
// creates one: RemoteID "R<n>" and a link to https://fake.example/R<n>.
type FakeSink struct {
	mu      sync.Mutex
	got     []*router.Delivery
	made    int
	Errs    []error // returned in order, then nil
	Creates bool
	refuse  string // a route key CheckRoute refuses
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
	if s.Creates && d.DedupKey != "" && d.RemoteID == "" {
		s.made++
		id := fmt.Sprintf("R%d", s.made)
		return router.Result{StatusCode: 201, RemoteID: id, Link: router.Link{"url": "https://fake.example/" + id}}, nil
	}
	return router.Result{StatusCode: 200, RemoteID: d.RemoteID}, nil
}

// CheckRoute implements router.RouteChecker: a sink configured with
// refuse: KEY refuses routes that set KEY.
func (s *FakeSink) CheckRoute(keys map[string]string) []router.RouteProblem {
	if _, ok := keys[s.refuse]; ok && s.refuse != "" {
		return []router.RouteProblem{{Key: s.refuse, Msg: "the fake refuses " + s.refuse}}
	}
	return nil
}

// Deliveries returns what the sink got so far.
func (s *FakeSink) Deliveries() []*router.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*router.Delivery(nil), s.got...)
}

// FakeConfig is a fake sink's config.
type FakeConfig struct {
	Token  router.Secret `yaml:"token"`
	Note   string        `yaml:"note"`
	Refuse string        `yaml:"refuse"`
}

// Build makes a fake sink.
func (f *FakeFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	var c FakeConfig
	if err := config.DecodeStrict(node, "", &c); err != nil {
		return nil, err
	}
	s := &FakeSink{refuse: c.Refuse}
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

// CaptureFactory builds "fake" sinks that make an HTTP request carrying
// their token in the URL, a header and the body, through a client whose
// transport records it the way sinks.CaptureRegistry does.
type CaptureFactory struct{ FakeFactory }

type slotKey struct{}

type slot struct {
	mu  sync.Mutex
	req *config.CapturedRequest
}

// RecordingTransport records a request made under CaptureFactory's
// Capture context and sends nothing.
type RecordingTransport struct{}

// RoundTrip records req and fails: nothing leaves the process.
func (RecordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if s, ok := req.Context().Value(slotKey{}).(*slot); ok {
		b, _ := io.ReadAll(req.Body)
		s.mu.Lock()
		if s.req == nil {
			s.req = &config.CapturedRequest{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone(), Body: b}
		}
		s.mu.Unlock()
	}
	return nil, fmt.Errorf("not sent")
}

// TokenSink posts its token in the URL, a header and the body, through
// Client.
type TokenSink struct {
	Token  string
	Client *http.Client
}

// Deliver makes the sink's request.
func (s *TokenSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	if d.Fields["text"] == "" {
		return router.Result{}, router.Permanent(fmt.Errorf("fake: text rendered empty"))
	}
	body, _ := json.Marshal(map[string]string{"text": d.Fields["text"], "token": s.Token, "id": d.ID})
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://api.example/post?token="+s.Token, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("X-Token", s.Token)
	req.Header.Set("X-Delivery", d.ID)
	resp, err := s.Client.Do(req)
	if err != nil {
		return router.Result{}, err
	}
	resp.Body.Close()
	return router.Result{StatusCode: resp.StatusCode}, nil
}

// Build makes a TokenSink that records its request.
func (f *CaptureFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	var c FakeConfig
	if err := config.DecodeStrict(node, "", &c); err != nil {
		return nil, err
	}
	return &TokenSink{Token: c.Token.Reveal(), Client: &http.Client{Transport: RecordingTransport{}}}, nil
}

// Capture records the first request made under the context it returns.
func (f *CaptureFactory) Capture(ctx context.Context) (context.Context, func() *config.CapturedRequest) {
	s := &slot{}
	return context.WithValue(ctx, slotKey{}, s), func() *config.CapturedRequest {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.req
	}
}

// TrialConfig is the config of the trial tests: two sources, sinks that
// need a token, an optional one switched off, and three rules.
const TrialConfig = `
admin:
  tokens:
    - {name: ops, token: "${OPS_TOKEN}", scopes: [trial]}
    - {name: viewer, token: "${VIEW_TOKEN}", scopes: [read]}
sources:
  - name: siq
    type: salesiq
    public_keys:
      - pem: ${PUBKEY}
  - name: gen
    type: none
    event: kind
sinks:
  - name: out
    type: fake
    token: ${TOK}
  - name: log
    type: fake
  - name: off
    type: fake
    optional: true
    token: ${EMPTY:-}
rules:
  - name: sad-chat
    source: siq
    when: event == "conversation.rated" && chat.rating == "sad"
    to:
      - sink: out
        text: "{{ .visitor.name }} is sad: {{ .chat.feedback }}"
        dedup_key: "chat-{{ .chat.id }}"
      - sink: off
        text: "never"
      - sink: log
        text: '{{ truncate "x" .chat.id }}'
  - name: missed-chat
    source: siq
    when: event == "conversation.missed"
    to:
      - sink: log
        text: "missed"
  - name: orders
    source: gen
    when: kind == "order.created"
    to:
      - sink: log
        text: "order"
`

// TrialToken is the out sink's token in TrialConfig.
const TrialToken = "tok-CANARY-5e6f7a8b"

// BaseConfig is a small valid config: a salesiq and a none source, a fake
// sink, one rule.
const BaseConfig = `
sources:
  - name: siq
    type: salesiq
    public_keys:
      - pem: ${PUBKEY}
  - name: gen
    type: none
sinks:
  - name: out
    type: fake
rules:
  - name: sad
    source: siq
    when: chat.rating == "sad"
    to:
      - sink: out
        text: "{{ .visitor.name }}"
`

// Lookup answers PUBKEY with PublicPEM and the rest from extra.
func Lookup(extra map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if k == "PUBKEY" {
			return PublicPEM, true
		}
		v, ok := extra[k]
		return v, ok
	}
}

// ReadEvent returns the example event file name from
// router/source/testdata/events, wherever the test runs.
func ReadEvent(t testing.TB, name string) []byte {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "router", "source", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Loader loads a config: rules.Load, or trial.Load, which also runs the
// config's own tests.
type Loader[R any] func(file string, data []byte, sinks config.SinkFactory, lookup func(string) (string, bool)) (R, error)

// MustLoad loads src with fake sinks and env's variables, failing the
// test on an error.
func MustLoad[R any](t testing.TB, load Loader[R], src string, env map[string]string) (R, *FakeFactory) {
	t.Helper()
	f := &FakeFactory{}
	rt, err := load("rules.yaml", []byte(src), f, Lookup(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return rt, f
}

// LoadError loads src and returns its error's text, failing the test if
// it loads or fails with anything but config errors.
func LoadError[R any](t testing.TB, load Loader[R], src string, env map[string]string) string {
	t.Helper()
	_, err := load("rules.yaml", []byte(src), &FakeFactory{}, Lookup(env))
	if err == nil {
		t.Fatalf("Load succeeded, want an error")
	}
	var es config.ConfigErrors
	if !errors.As(err, &es) {
		t.Fatalf("Load error %T %v, want ConfigErrors", err, err)
	}
	return err.Error()
}
