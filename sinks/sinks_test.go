package sinks

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// node parses a sink's YAML snippet and expands ${VAR} references from env
// the way the router's loader does, so that Secret fields pass DecodeStrict.
func node(t *testing.T, snippet string, env map[string]string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(snippet), &doc); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	n := doc.Content[0]
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if errs := config.ExpandEnv(n, lookup); len(errs) > 0 {
		t.Fatalf("expand: %v", errs)
	}
	return n
}

// testRegistry is a Registry whose egress guard lets the sinks reach the
// fakes on loopback, as a test profile's egress.allow would.
func testRegistry() *Registry {
	r := NewRegistry()
	r.SetEgressAllow([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	return r
}

// build builds a sink of kind from snippet with a fresh Registry.
func build(t *testing.T, kind, snippet string, env map[string]string) (router.Sink, error) {
	t.Helper()
	return testRegistry().Build(kind, "test-sink", node(t, snippet, env))
}

func mustBuild(t *testing.T, kind, snippet string, env map[string]string) router.Sink {
	t.Helper()
	s, err := build(t, kind, snippet, env)
	if err != nil {
		t.Fatalf("build %s: %v", kind, err)
	}
	return s
}

// wantConfigError checks that err is a config error at path whose message
// contains msg.
func wantConfigError(t *testing.T, err error, path, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a config error at %s, got none", path)
	}
	for _, e := range config.AsConfigErrors(err, nil, "") {
		if e.Path == path && strings.Contains(e.Msg, msg) {
			return
		}
	}
	t.Fatalf("want a config error at %s containing %q, got %v", path, msg, err)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs:\n got: %s\nwant: %s", path, got, want)
	}
}

func delivery(fields map[string]string) *router.Delivery {
	return &router.Delivery{
		ID: "dlv-0001", Rule: "sad-chat", Sink: "test-sink", Attempt: 1, Fields: fields,
		Event: map[string]any{"event": "conversation.rated", "chat": map[string]any{"rating": "sad", "feedback": `too slow <b>&</b> "meh"`}},
	}
}

// examples lists a kind's example configs.
func examples(t *testing.T, kind string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", kind, "example*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestKindsHaveExamplesThatBuild(t *testing.T) {
	if len(Kinds()) == 0 {
		t.Fatal("no sink kinds registered")
	}
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join("testdata", kind, "example.yaml")); err != nil {
				t.Fatalf("every kind needs testdata/%s/example.yaml: %v", kind, err)
			}
			for _, f := range examples(t, kind) {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				env := anyEnv("https://hooks.slack.com/services/T0/B0/x", "xoxb-example")
				if _, err := testRegistry().Build(kind, "example", nodeWith(t, string(src), env)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
			if _, ok := testRegistry().RouteFields(kind); !ok {
				t.Errorf("RouteFields(%q) not found", kind)
			}
		})
	}
}

// anyEnv answers every variable: names ending in URL get urlValue, the
// others value.
func anyEnv(urlValue, value string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if strings.HasSuffix(name, "URL") {
			return urlValue, true
		}
		return value, true
	}
}

func nodeWith(t *testing.T, snippet string, lookup func(string) (string, bool)) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(snippet), &doc); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	n := doc.Content[0]
	if errs := config.ExpandEnv(n, lookup); len(errs) > 0 {
		t.Fatalf("expand: %v", errs)
	}
	return n
}

// pointAt sends every endpoint in a sink's config (keys url and *_url that
// are not ${VAR} secrets) to base. router.ExpandEnv marks the scalars it
// expanded with yaml.FlowStyle; those keep their value.
func pointAt(n *yaml.Node, base string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if (k.Value == "url" || strings.HasSuffix(k.Value, "_url")) && v.Kind == yaml.ScalarNode && v.Style&yaml.FlowStyle == 0 {
			v.Value = base + "/"
		}
	}
}

const canary = "CANARY-s3cr3t-9f8e7d"

// echoServer fails every request with status, echoing the request back
// (URL, headers, body), the way a careless endpoint might.
func echoServer(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %s\n%v\n%s", r.Method, r.URL, r.Header, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// requiredFields is a minimal route's fields for kind: its required ones,
// and text for a kind that wants one of several (slack: text, blocks or a
// root; see its CheckRoute).
func requiredFields(kind string) map[string]string {
	specs, _ := testRegistry().RouteFields(kind)
	f := map[string]string{}
	for _, s := range specs {
		if s.Required || kind == "slack" && s.Name == "text" {
			f[s.Name] = "hello"
		}
	}
	return f
}

func TestSecretsNeverInErrors(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // connection refused: the *url.Error path
	for _, kind := range Kinds() {
		for _, f := range examples(t, kind) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(f, func(t *testing.T) {
				// Build with secrets that are broken in several ways.
				for _, v := range []string{canary, "::%zz" + canary, "http://u:" + canary + "@h/", "ftp://h/" + canary, "http://h/" + canary + "\n"} {
					_, err := testRegistry().Build(kind, "s", nodeWith(t, string(src), anyEnv(v, v)))
					if err != nil && strings.Contains(err.Error(), canary) {
						t.Errorf("Build error leaks the secret: %v", err)
					}
				}
				// Deliver against failing fakes.
				for _, base := range []string{echoServer(t, 400).URL, echoServer(t, 500).URL, deadURL} {
					n := nodeWith(t, string(src), anyEnv(base+"/services/T0/B0/"+canary+"?k="+canary, "xoxb-"+canary))
					pointAt(n, base)
					s, err := testRegistry().Build(kind, "s", n)
					if err != nil {
						t.Fatalf("build: %v", err)
					}
					quiet(s)
					_, err = s.Deliver(context.Background(), delivery(requiredFields(kind)))
					if err != nil && strings.Contains(err.Error(), canary) {
						t.Errorf("Deliver error leaks the secret: %v", err)
					}
				}
			})
		}
	}
}

// quiet stops a log sink from printing into the test output.
func quiet(s router.Sink) {
	if l, ok := s.(*logSink); ok {
		l.w = io.Discard
	}
}

func TestCancelledContextReturnsPromptly(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	for _, kind := range Kinds() {
		for _, f := range examples(t, kind) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(f, func(t *testing.T) {
				n := nodeWith(t, string(src), anyEnv(hang.URL+"/services/T0/B0/x", "xoxb-test"))
				pointAt(n, hang.URL)
				s, err := testRegistry().Build(kind, "s", n)
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				quiet(s)
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				start := time.Now()
				if _, err := s.Deliver(ctx, delivery(requiredFields(kind))); err == nil {
					t.Error("Deliver with a cancelled ctx succeeded")
				}
				// Cancelled while the far side hangs.
				ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				_, _ = s.Deliver(ctx, delivery(requiredFields(kind)))
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("Deliver took %v after its ctx was done", d)
				}
			})
		}
	}
}

// TestEgressGuardedByDefault: with the default Registry every kind refuses
// a loopback destination before connecting, permanently, and the canary
// listener sees no connection.
func TestEgressGuardedByDefault(t *testing.T) {
	var conns atomic.Int64
	canary := httptest.NewUnstartedServer(http.NotFoundHandler())
	canary.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	canary.Start()
	defer canary.Close()
	for _, kind := range Kinds() {
		if kind == "log" {
			continue
		}
		src, err := os.ReadFile("testdata/" + kind + "/example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		n := nodeWith(t, string(src), anyEnv(canary.URL+"/services/T0/B0/x", "xoxb-test"))
		pointAt(n, canary.URL)
		s, err := NewRegistry().Build(kind, "s", n)
		if err != nil {
			t.Fatalf("%s: build: %v", kind, err)
		}
		_, err = s.Deliver(context.Background(), delivery(requiredFields(kind)))
		if err == nil || !router.IsPermanent(err) || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("%s: Deliver to loopback = %v, want a permanent egress refusal", kind, err)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the canary on loopback saw %d connections, want 0", n)
	}
}

// TestRegisterPanicsOnDuplicateKind: a second kind of a registered name is
// refused loudly, and the first stays as it was.
func TestRegisterPanicsOnDuplicateKind(t *testing.T) {
	before := kinds["http"]
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "sink kind http is registered twice") {
			t.Errorf("recovered %q, want a panic naming the kind", msg)
		}
		if len(kinds["http"].fields) != len(before.fields) {
			t.Error("the first http kind was replaced")
		}
	}()
	register("http", nil, func() logConfig { return logConfig{} }, newLogSink)
}
