package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
)

// The trial API over the engine, and the embedded samples.

func mustLoad(t *testing.T, src string, env map[string]string) (*rules.Runtime, *testkit.FakeFactory) {
	t.Helper()
	return testkit.MustLoad(t, rules.Load, src, env)
}

func trialRuntime(t *testing.T) (*rules.Runtime, *testkit.FakeFactory) {
	t.Helper()
	return mustLoad(t, testkit.TrialConfig, map[string]string{"TOK": testkit.TrialToken, "OPS_TOKEN": "ops-token-0123456789", "VIEW_TOKEN": "view-token-0123456789"})
}

// trialStore serves ListEvents and GetEvent from memory; any other call,
// a write above all, panics through the nil embedded Store.
type trialStore struct {
	router.Store
	events []*router.EventRecord
	links  map[string]router.Link // every key's
}

func (s *trialStore) Links(context.Context, string) (map[string]router.Link, error) {
	return s.links, nil
}

func (s *trialStore) Silences(context.Context) ([]*router.Silence, error) { return nil, nil }

func (s *trialStore) ListEvents(_ context.Context, f router.EventFilter) ([]*router.EventRecord, error) {
	var out []*router.EventRecord
	for _, e := range s.events {
		if e.Source == f.Source {
			c := *e
			c.Body = nil
			out = append(out, &c)
		}
	}
	return out, nil
}

func (s *trialStore) GetEvent(_ context.Context, source, id string) (*router.EventRecord, error) {
	for _, e := range s.events {
		if e.Source == source && e.ID == id {
			return e, nil
		}
	}
	return nil, router.ErrNotFound
}

func trialAPI(t *testing.T, st router.Store) (*rules.Runtime, *testkit.FakeFactory, http.Handler) {
	t.Helper()
	rt, f := trialRuntime(t)
	r := New(rt, st, Options{Capture: func() config.Capturer { return &testkit.CaptureFactory{} }})
	return rt, f, AdminHandlerForTest(r)
}

// AdminHandlerForTest is router/admin's Handler over r. This package's
// internal tests cannot import router/admin (it imports this package);
// admin_hook_test.go, an external test of the same binary, sets it.
var AdminHandlerForTest func(r *Router) http.Handler

func call(t *testing.T, h http.Handler, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	return w.Code, out
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestAPITrial(t *testing.T) {
	_, f, h := trialAPI(t, &trialStore{links: map[string]router.Link{"out": {"id": "T-9", "url": "https://desk.example/9"}}})
	const ops = "ops-token-0123456789"
	sad := string(testkit.ReadEvent(t, "conversation-rated-sad.json"))

	if code, _ := call(t, h, "POST", "/api/trial", "", `{}`); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := call(t, h, "POST", "/api/trial", "view-token-0123456789", `{}`); code != 403 {
		t.Errorf("read-only token: %d", code)
	}
	for _, body := range []string{`{`, `{"source": "siq"}`, `{"source": "nope", "event": {}}`, `{"source": "siq", "event": {"x": 1}}`, `{"source": "siq", "event": {}, "extra": 1}`} {
		if code, out := call(t, h, "POST", "/api/trial", ops, body); code != 400 || out["error"] == "" {
			t.Errorf("%s: %d %v, want 400 with an error", body, code, out)
		}
	}

	code, out := call(t, h, "POST", "/api/trial", ops, `{"source": "siq", "event": `+sad+`, "send": false}`)
	if code != 200 {
		t.Fatalf("trial: %d %v", code, out)
	}
	if got, want := keysOf(out), []string{"event_id", "event_name", "routes", "rules", "send", "source"}; !slices.Equal(got, want) {
		t.Errorf("answer keys %v, want %v", got, want)
	}
	rules := out["rules"].([]any)
	if got, want := keysOf(rules[1].(map[string]any)), []string{"error", "explanation", "matched", "name"}; !slices.Equal(got, want) {
		t.Errorf("rule keys %v, want %v", got, want)
	}
	routes := out["routes"].([]any)
	r0 := routes[0].(map[string]any)
	if got, want := keysOf(r0), []string{"action", "dedup_key", "error", "fields", "kind", "links", "outcome", "request", "result", "route", "rule", "sink"}; !slices.Equal(got, want) {
		t.Errorf("route keys %v, want %v", got, want)
	}
	if r0["action"] != "follow up on T-9" || r0["links"].(map[string]any)["out"].(map[string]any)["url"] != "https://desk.example/9" {
		t.Errorf("route 0 action %v, links %v; want the store's link followed up on", r0["action"], r0["links"])
	}
	if r0["result"] != nil || r0["request"] == nil {
		t.Errorf("route 0: %v", r0)
	}
	if got, want := keysOf(r0["request"].(map[string]any)), []string{"body", "headers", "method", "url"}; !slices.Equal(got, want) {
		t.Errorf("request keys %v, want %v", got, want)
	}
	if n := len(f.Sinks["out"].Deliveries()); n != 0 {
		t.Errorf("send: false delivered %d", n)
	}

	code, out = call(t, h, "POST", "/api/trial", ops, `{"source": "siq", "event": `+sad+`, "send": true}`)
	if code != 200 || out["send"] != true {
		t.Fatalf("send: %d %v", code, out)
	}
	res := out["routes"].([]any)[0].(map[string]any)["result"].(map[string]any)
	if got, want := keysOf(res), []string{"error", "remote_id", "status_code"}; !slices.Equal(got, want) || res["status_code"] != float64(200) {
		t.Errorf("result %v", res)
	}
	if n := len(f.Sinks["out"].Deliveries()); n != 1 {
		t.Errorf("send: true delivered %d, want 1", n)
	}
}

func TestAPITrialSamples(t *testing.T) {
	real := &router.EventRecord{Source: "siq", ID: "conversation.rated:1:2", Name: "conversation.rated", ReceivedAt: time.Date(2025, 3, 1, 10, 42, 0, 0, time.UTC),
		Body: []byte(`{"event":"conversation.rated","app_id":40526000000002040,"entity":{"rating":1,"access_token":"tok-CANARY","nested":[{"password":"pw-CANARY"}]}}`)}
	other := &router.EventRecord{Source: "siq", ID: "x", Name: "conversation.visitor.replied", ReceivedAt: time.Date(2025, 3, 1, 10, 40, 0, 0, time.UTC), Body: []byte(`{"event":"conversation.visitor.replied"}`)}
	quarantined := &router.EventRecord{Source: "siq", ID: "q", Quarantined: true, Body: []byte(`nope`)}
	_, _, h := trialAPI(t, &trialStore{events: []*router.EventRecord{real, other, quarantined}})
	code, out := call(t, h, "GET", "/api/trial/samples", "ops-token-0123456789", "")
	if code != 200 {
		t.Fatalf("samples: %d %v", code, out)
	}
	var got []string
	var realPayload map[string]any
	for _, it := range out["items"].([]any) {
		m := it.(map[string]any)
		if ks := keysOf(m); !slices.Equal(ks, []string{"event", "label", "payload", "real", "source", "type"}) {
			t.Fatalf("sample keys %v", ks)
		}
		got = append(got, fmt.Sprintf("%s/%s/%v: %s", m["source"], m["event"], m["real"], m["label"]))
		if m["real"] == true && m["event"] == "conversation.rated" {
			realPayload = m["payload"].(map[string]any)
		}
	}
	want := []string{
		"siq/conversation.created/false: conversation created: a visitor starts a chat",
		"siq/conversation.attender.updated/false: conversation attender updated: an operator picks it up",
		"siq/conversation.missed/false: conversation missed",
		"siq/conversation.completed/false: conversation completed",
		"siq/conversation.rated/false: conversation rated sad",
		"siq/conversation.rated/false: conversation rated neutral",
		"siq/conversation.rated/false: conversation rated happy",
		"siq/conversation.rated/true: latest real conversation.rated (received 2025-03-01 10:42:00 UTC)",
		"siq/conversation.visitor.replied/true: latest real conversation.visitor.replied (received 2025-03-01 10:40:00 UTC)",
		"gen//false: generic JSON event",
	}
	if !slices.Equal(got, want) {
		t.Errorf("samples:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	b, _ := json.Marshal(realPayload)
	entity, _ := realPayload["entity"].(map[string]any)
	if strings.Contains(string(b), "CANARY") || !strings.Contains(string(b), `"app_id":40526000000002040`) || entity["access_token"] != "<redacted>" {
		t.Errorf("real payload %s", b)
	}
}
