package sinks

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

// countingServer counts the requests that reach it: a capture must leave
// it at zero.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// captureOne builds a sink with a capture registry and runs one delivery
// under a capture context.
func captureOne(t *testing.T, kind, snippet string, env map[string]string, d *router.Delivery) (*config.CapturedRequest, error) {
	t.Helper()
	reg := NewCaptureRegistry()
	s, err := reg.Build(kind, "test-sink", node(t, snippet, env))
	if err != nil {
		t.Fatalf("build %s: %v", kind, err)
	}
	ctx, captured := reg.Capture(context.Background())
	_, err = s.Deliver(ctx, d)
	return captured(), err
}

func TestCaptureHTTPSink(t *testing.T) {
	srv, hits := countingServer(t)
	req, err := captureOne(t, "http", "url: ${URL}\nheaders:\n  X-Api-Key: ${KEY}", map[string]string{"URL": srv.URL + "/hook?k=1", "KEY": canary},
		delivery(map[string]string{"body": `{"text": "sad"}`}))
	if err == nil {
		t.Fatal("Deliver succeeded under a capture; want the canned error")
	}
	if req == nil {
		t.Fatal("no request captured")
	}
	if req.Method != "POST" || req.URL != srv.URL+"/hook?k=1" || string(req.Body) != `{"text": "sad"}` {
		t.Errorf("captured %s %s %q", req.Method, req.URL, req.Body)
	}
	if req.Header.Get("X-Api-Key") != canary || req.Header.Get("Idempotency-Key") != "dlv-0001" || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("captured headers %v", req.Header)
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server during a capture", hits.Load())
	}
}

func TestCaptureSlackRecordsTheFirstRequestOnly(t *testing.T) {
	srv, hits := countingServer(t)
	req, _ := captureOne(t, "slack", "token: ${TOKEN}\nchannel: \"#support\"\napi_url: "+srv.URL+"/api/", map[string]string{"TOKEN": "xoxb-" + canary},
		delivery(map[string]string{"text": "sad rating from Tricia"}))
	if req == nil {
		t.Fatal("no request captured")
	}
	if req.URL != srv.URL+"/api/chat.postMessage" || req.Header.Get("Authorization") != "Bearer xoxb-"+canary {
		t.Errorf("captured %s %s, Authorization %q", req.Method, req.URL, req.Header.Get("Authorization"))
	}
	form, err := url.ParseQuery(string(req.Body))
	if err != nil || form.Get("channel") != "#support" || form.Get("text") != "sad rating from Tricia" || form.Has("token") {
		t.Errorf("captured body %q", req.Body)
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server during a capture", hits.Load())
	}
}

// TestCaptureZohodeskRecordsTheTicket checks that the access token comes
// from the stand-in accounts server, so that what is recorded is the
// ticket request, and that no real token request is made.
func TestCaptureZohodeskRecordsTheTicket(t *testing.T) {
	srv, hits := countingServer(t)
	req, _ := captureOne(t, "zohodesk", zohoConfig(srv.URL, ""), zohoEnv, zohoDelivery())
	if req == nil {
		t.Fatal("no request captured")
	}
	if req.Method != "POST" || req.URL != srv.URL+"/api/v1/tickets" || !strings.Contains(string(req.Body), "Sad chat from Ann") {
		t.Errorf("captured %s %s %s", req.Method, req.URL, req.Body)
	}
	if got := req.Header.Get("Authorization"); got != "Zoho-oauthtoken trial-capture-token" {
		t.Errorf("Authorization %q, want the stand-in token", got)
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server during a capture", hits.Load())
	}
}

// TestCaptureIgnoresCAFile checks that a sink with its own CA bundle,
// which would get a client of its own, is still captured.
func TestCaptureIgnoresCAFile(t *testing.T) {
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request reached the server: %s %s", r.Method, r.URL)
	}))
	defer tls.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tls.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	req, _ := captureOne(t, "http", "url: "+tls.URL+"/hook\nca_file: "+ca, nil, delivery(map[string]string{"body": "{}"}))
	if req == nil || req.URL != tls.URL+"/hook" {
		t.Fatalf("captured %+v", req)
	}
}

func TestCaptureWithoutContextSendsNothing(t *testing.T) {
	srv, hits := countingServer(t)
	reg := NewCaptureRegistry()
	s, err := reg.Build("http", "test-sink", node(t, "url: "+srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(context.Background(), delivery(nil)); err == nil {
		t.Error("Deliver succeeded on a capture registry")
	}
	// A client cloned from the shared transport cannot connect either.
	c := &http.Client{Transport: reg.shared.transport.Clone()}
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Error("the shared transport of a capture registry connected")
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server", hits.Load())
	}
}

func TestCaptureSlotsAreIndependent(t *testing.T) {
	reg := NewCaptureRegistry()
	s, err := reg.Build("http", "test-sink", node(t, "url: https://example.invalid/a", nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx1, got1 := reg.Capture(context.Background())
	ctx2, got2 := reg.Capture(context.Background())
	_, _ = s.Deliver(ctx1, delivery(map[string]string{"body": "one"}))
	_, _ = s.Deliver(ctx1, delivery(map[string]string{"body": "again"}))
	_, _ = s.Deliver(ctx2, delivery(map[string]string{"body": "two"}))
	if r := got1(); r == nil || string(r.Body) != "one" {
		t.Errorf("first slot: %+v, want the first request (one)", r)
	}
	if r := got2(); r == nil || string(r.Body) != "two" {
		t.Errorf("second slot: %+v", r)
	}
}
