package dispatch

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/source"
)

// salesiqView decodes a test event as a salesiq source does.
func salesiqView(t *testing.T, name string) *router.View {
	t.Helper()
	v, err := source.SalesIQ{}.Decode(&router.Incoming{Source: "siq", Body: readEvent(t, name), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func genericView(t *testing.T, body string) *router.View {
	t.Helper()
	v, err := source.Generic{}.Decode(&router.Incoming{Source: "gen", Body: []byte(body), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// explain compiles and runs when on view like a rule, then explains it.
func explain(t *testing.T, when string, env any, view *router.View) []string {
	t.Helper()
	p, err := compileWhen(when, env)
	if err != nil {
		t.Fatalf("compile %s: %v", when, err)
	}
	out, err := expr.Run(p, view.Env)
	return ExplainWhen(when, env, view.Env, out, err)
}

func TestExplainWhen(t *testing.T) {
	happy := salesiqView(t, "conversation-rated-happy.json")
	gen := genericView(t, `{"kind": "order.created", "total": 120, "tags": ["vip", "eu"], "user": null}`)
	cases := []struct {
		when string
		env  any
		view *router.View
		want []string
	}{
		{`chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "sad" → "happy" == "sad" → false`,
		}},
		{`chat.rating != "happy"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating != "happy" → "happy" != "happy" → false`,
		}},
		{`attempt < 1`, router.SalesIQEvent{}, happy, []string{
			`attempt < 1 → 1 < 1 → false`,
		}},
		{`chat.rating in ["sad", "neutral"]`, router.SalesIQEvent{}, happy, []string{
			`chat.rating in ["sad", "neutral"] → "happy" in ["sad","neutral"] → false`,
		}},
		{`event == "conversation.rated" && chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`event == "conversation.rated" → "conversation.rated" == "conversation.rated" → true`,
			`chat.rating == "sad" → "happy" == "sad" → false`,
			`event == "conversation.rated" && chat.rating == "sad" → false: the left side is true, so the right side (false) decides`,
		}},
		{`event == "conversation.missed" && chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`event == "conversation.missed" → "conversation.rated" == "conversation.missed" → false`,
			`event == "conversation.missed" && chat.rating == "sad" → false: the left side is false, so the right side is not evaluated`,
		}},
		{`chat.rating == "sad" || chat.rating == "neutral"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "sad" → "happy" == "sad" → false`,
			`chat.rating == "neutral" → "happy" == "neutral" → false`,
			`chat.rating == "sad" || chat.rating == "neutral" → false: the left side is false, so the right side (false) decides`,
		}},
		{`chat.rating == "happy" or chat.feedback == ""`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "happy" → "happy" == "happy" → true`,
			`chat.rating == "happy" or chat.feedback == "" → true: the left side is true, so the right side is not evaluated`,
		}},
		{`!(chat.feedback startsWith "Quick")`, router.SalesIQEvent{}, happy, []string{
			`chat.feedback startsWith "Quick" → "Quick and friendly, thanks!" startsWith "Quick" → true`,
			`!(chat.feedback startsWith "Quick") → false`,
		}},
		{`chat.rating not in ["happy"]`, router.SalesIQEvent{}, happy, []string{
			`chat.rating in ["happy"] → "happy" in ["happy"] → true`,
			`not (chat.rating in ["happy"]) → false`,
		}},
		{`len(chat.feedback) > 100`, router.SalesIQEvent{}, happy, []string{
			`len(chat.feedback) > 100 → 27 > 100 → false`,
		}},
		{`hasPrefix(chat.question, "refund")`, router.SalesIQEvent{}, happy, []string{
			`hasPrefix(chat.question, "refund") → hasPrefix("", "refund") → false`,
		}},
		{`kind startsWith "order." && total >= 100`, source.GenericEnv(), gen, []string{
			`kind startsWith "order." → "order.created" startsWith "order." → true`,
			`total >= 100 → 120 >= 100 → true`,
			`kind startsWith "order." && total >= 100 → true: the left side is true, so the right side (true) decides`,
		}},
		{`payload?.customer?.name == "Tricia"`, source.GenericEnv(), gen, []string{
			`payload?.customer?.name == "Tricia" → nil == "Tricia" → false`,
		}},
		{`"vip" in tags`, source.GenericEnv(), gen, []string{
			`"vip" in tags → "vip" in ["vip","eu"] → true`,
		}},
		{`any(tags, # startsWith "v")`, source.GenericEnv(), gen, []string{
			`any(tags, # startsWith "v") → true`,
		}},
		{`user.name == "x"`, source.GenericEnv(), gen, []string{
			`user.name == "x" → (error: cannot fetch name from <nil>) == "x" → error: cannot fetch name from <nil>`,
		}},
		{`total > 100 ? kind == "order.created" : false`, source.GenericEnv(), gen, []string{
			`total > 100 → 120 > 100 → true`,
			`kind == "order.created" → "order.created" == "order.created" → true`,
			`total > 100 ? kind == "order.created" : false → true`,
		}},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			got := explain(t, c.when, c.env, c.view)
			if !slices.Equal(got, c.want) {
				t.Errorf("explanation:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(c.want, "\n      "))
			}
		})
	}
}

func TestExplainFallsBackToTheResult(t *testing.T) {
	// Not parseable by itself: the overall result is all there is to say.
	got := ExplainWhen("chat.rating ==", router.SalesIQEvent{}, &router.SalesIQEvent{}, false, nil)
	if want := []string{"chat.rating == → false"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// A sub-expression that does not compile on its own (the env given
	// here lacks chat): fall back, not half an explanation.
	got = ExplainWhen(`chat.rating == "sad" && true`, struct{}{}, &router.SalesIQEvent{}, nil, fmt.Errorf("boom"))
	if want := []string{`chat.rating == "sad" && true → error: boom`}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExplainIsBounded(t *testing.T) {
	when := strings.Repeat(`chat.rating == "sad" || `, 200) + "false"
	view := salesiqView(t, "conversation-rated-happy.json")
	got := explain(t, when, router.SalesIQEvent{}, view)
	if len(got) > maxExplainLines+1 || !strings.Contains(got[len(got)-1], "cut short") {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
}

// captureFactory builds "fake" sinks that make an HTTP request carrying
// their token in the URL, a header and the body, through a client whose
// transport records it the way sinks.CaptureRegistry does.
type captureFactory struct{ testkit.FakeFactory }

type slotKey struct{}

type slot struct {
	mu  sync.Mutex
	req *config.CapturedRequest
}

type recordingTransport struct{}

func (recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
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

type tokenSink struct {
	token string
	c     *http.Client
}

func (s *tokenSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	if d.Fields["text"] == "" {
		return router.Result{}, router.Permanent(fmt.Errorf("fake: text rendered empty"))
	}
	body, _ := json.Marshal(map[string]string{"text": d.Fields["text"], "token": s.token, "id": d.ID})
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://api.example/post?token="+s.token, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("X-Token", s.token)
	req.Header.Set("X-Delivery", d.ID)
	resp, err := s.c.Do(req)
	if err != nil {
		return router.Result{}, err
	}
	resp.Body.Close()
	return router.Result{StatusCode: resp.StatusCode}, nil
}

func (f *captureFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	var c testkit.FakeConfig
	if err := config.DecodeStrict(node, "", &c); err != nil {
		return nil, err
	}
	return &tokenSink{token: c.Token.Reveal(), c: &http.Client{Transport: recordingTransport{}}}, nil
}

func (f *captureFactory) Capture(ctx context.Context) (context.Context, func() *config.CapturedRequest) {
	s := &slot{}
	return context.WithValue(ctx, slotKey{}, s), func() *config.CapturedRequest {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.req
	}
}

const trialConfig = `
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

const trialToken = "tok-CANARY-5e6f7a8b"

func trialRuntime(t *testing.T) (*Runtime, *testkit.FakeFactory) {
	t.Helper()
	return mustLoad(t, trialConfig, map[string]string{"TOK": trialToken, "OPS_TOKEN": "ops-token-0123456789", "VIEW_TOKEN": "view-token-0123456789"})
}

func TestTrialRendersWithoutSending(t *testing.T) {
	rt, f := trialRuntime(t)
	res, err := rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: readEvent(t, "conversation-rated-sad.json")}, TrialOptions{Capture: &captureFactory{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.EventName != "conversation.rated" || res.EventID != "conversation.rated:40526000001808033:1567065865617" || res.Send {
		t.Errorf("event %+v", res)
	}
	var names []string
	for _, r := range res.Rules {
		names = append(names, fmt.Sprintf("%s=%t", r.Name, r.Matched))
	}
	if want := []string{"sad-chat=true", "missed-chat=false", "orders=false"}; !slices.Equal(names, want) {
		t.Errorf("rules %v, want %v", names, want)
	}
	if got := res.Rules[1].Explanation; !slices.Equal(got, []string{`event == "conversation.missed" → "conversation.rated" == "conversation.missed" → false`}) {
		t.Errorf("missed-chat explanation %q", got)
	}
	if got := res.Rules[2].Explanation; !slices.Equal(got, []string{`the rule is for source "gen" only`}) {
		t.Errorf("orders explanation %q", got)
	}
	if len(res.Routes) != 3 {
		t.Fatalf("%d routes, want 3: %+v", len(res.Routes), res.Routes)
	}
	out := res.Routes[0]
	if out.Sink != "out" || out.Kind != "fake" || out.Error != "" || out.Result != nil || out.DedupKey != "chat-40526000001808033" {
		t.Errorf("route to out: %+v", out)
	}
	if out.Fields["text"] != "[Tricia] is sad: [Nobody answered my question about the refund]" {
		t.Errorf("text %q", out.Fields["text"])
	}
	req := out.Request
	if req == nil {
		t.Fatal("no request rendered for out")
	}
	if req.Method != "POST" || req.URL != "https://api.example/post?token=<redacted>" || req.Headers["Authorization"] != "<redacted>" || req.Headers["X-Token"] != "<redacted>" {
		t.Errorf("request %+v", req)
	}
	if !strings.Contains(req.Body, `"token":"<redacted>"`) || !strings.Contains(req.Body, "Tricia") || !strings.HasPrefix(req.Headers["X-Delivery"], "trial-") {
		t.Errorf("request body %s, headers %v", req.Body, req.Headers)
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), trialToken) {
		t.Errorf("the sink's token leaked into the trial result: %s", b)
	}
	if off := res.Routes[1]; off.Request != nil || !strings.Contains(off.Error, "switched off") || off.Fields["text"] != "never" {
		t.Errorf("route to the switched-off sink: %+v", off)
	}
	if bad := res.Routes[2]; bad.Request != nil || !strings.Contains(bad.Error, "render text") {
		t.Errorf("route with a failing template: %+v", bad)
	}
	for name, s := range f.Sinks {
		if n := len(s.Deliveries()); n != 0 {
			t.Errorf("sink %s got %d deliveries from a trial without send", name, n)
		}
	}
}

func TestTrialSendDeliversOnceWithoutDedupKey(t *testing.T) {
	rt, f := trialRuntime(t)
	res, err := rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: readEvent(t, "conversation-rated-sad.json"), Send: true}, TrialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := f.Sinks["out"].Deliveries()
	if len(got) != 1 {
		t.Fatalf("out got %d deliveries, want 1", len(got))
	}
	d := got[0]
	if !strings.HasPrefix(d.ID, "trial-") || d.DedupKey != "" || d.RemoteID != "" || d.Attempt != 1 || d.Fields["text"] == "" {
		t.Errorf("delivery %+v", d)
	}
	if r := res.Routes[0].Result; r == nil || r.StatusCode != 200 || r.Error != "" {
		t.Errorf("result %+v", r)
	}
	// Neither the switched-off sink nor the route whose template fails is
	// sent to.
	if res.Routes[1].Result != nil || res.Routes[2].Result != nil || len(f.Sinks["log"].Deliveries()) != 0 {
		t.Errorf("routes with errors were sent: %+v", res.Routes[1:])
	}
}

func TestTrialInputErrors(t *testing.T) {
	rt, _ := trialRuntime(t)
	for _, c := range []struct {
		in   TrialInput
		want string
	}{
		{TrialInput{Source: "nope", Payload: []byte(`{}`)}, `no source "nope"`},
		{TrialInput{Payload: []byte(`{}`)}, "name a source: the config has siq, gen"},
		{TrialInput{Source: "siq", Payload: []byte(`{"entity": {}}`)}, "does not decode"},
		{TrialInput{Source: "gen", Payload: []byte(`{`)}, "does not decode"},
	} {
		_, err := rt.Trial(context.Background(), c.in, TrialOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.in, err, c.want)
		}
	}
}

// trialStore serves ListEvents and GetEvent from memory; any other call,
// a write above all, panics through the nil embedded Store.
type trialStore struct {
	router.Store
	events []*router.EventRecord
}

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

func trialAPI(t *testing.T, st router.Store) (*Runtime, *testkit.FakeFactory, http.Handler) {
	t.Helper()
	rt, f := trialRuntime(t)
	r := New(rt, st, Options{Capture: func() config.Capturer { return &captureFactory{} }})
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
	_, f, h := trialAPI(t, &trialStore{})
	const ops = "ops-token-0123456789"
	sad := string(readEvent(t, "conversation-rated-sad.json"))

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
	if got, want := keysOf(r0), []string{"dedup_key", "error", "fields", "kind", "request", "result", "route", "rule", "sink"}; !slices.Equal(got, want) {
		t.Errorf("route keys %v, want %v", got, want)
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

// TestSamplesDecode checks that every embedded sample is an event its
// source type decodes, with the rating it is labelled with.
func TestSamplesDecode(t *testing.T) {
	for _, k := range append(source.SalesIQSamples, genericSample) {
		s := embedded(&Source{Name: "s", Type: "salesiq"}, k)
		var v *router.View
		var err error
		if k.Event == "" {
			v, err = source.Generic{}.Decode(&router.Incoming{Body: s.Payload})
		} else {
			v, err = source.SalesIQ{}.Decode(&router.Incoming{Body: s.Payload})
		}
		if err != nil {
			t.Errorf("%s: %v", k.File, err)
			continue
		}
		if k.Event != "" && v.Name != k.Event {
			t.Errorf("%s: event %q, want %q", k.File, v.Name, k.Event)
		}
		for _, r := range []string{"sad", "neutral", "happy"} {
			if strings.HasSuffix(k.Label, "rated "+r) && v.Env.(*router.SalesIQEvent).Chat.Rating != r {
				t.Errorf("%s: rating %q, want %s", k.File, v.Env.(*router.SalesIQEvent).Chat.Rating, r)
			}
		}
	}
	if _, err := (source.SalesIQ{BareEvent: "conversation.rated"}).Decode(&router.Incoming{Body: embedded(&Source{}, source.Sample{File: "salesiq-workflow-bare-rated.json"}).Payload}); err != nil {
		t.Errorf("workflow sample: %v", err)
	}
}

// securedSink signs with the delivery's key, as a secured http sink does.
type securedSink struct{ tokenSink }

func (s *securedSink) Secured() bool { return true }

func (s *securedSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	if d.SigningKey == nil {
		return router.Result{}, fmt.Errorf("no signing key")
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://api.example/signed", strings.NewReader("{}"))
	req.Header.Set("X-Siqsignature", fmt.Sprintf("sig-%d", d.SigningKey.N.BitLen()))
	resp, err := s.c.Do(req)
	if err != nil {
		return router.Result{}, err
	}
	resp.Body.Close()
	return router.Result{StatusCode: resp.StatusCode}, nil
}

type securedFactory struct{ captureFactory }

func (f *securedFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	return &securedSink{tokenSink{c: &http.Client{Transport: recordingTransport{}}}}, nil
}

func TestTrialSecuredSinks(t *testing.T) {
	rt, _ := trialRuntime(t)
	payload := readEvent(t, "conversation-rated-sad.json")
	res, err := rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: payload}, TrialOptions{Capture: &securedFactory{}})
	if err != nil {
		t.Fatal(err)
	}
	// Rendered with a stand-in key, whose signature is not shown.
	if req := res.Routes[0].Request; req == nil || req.Headers["X-Siqsignature"] != signatureShown {
		t.Errorf("rendered request of a secured sink: %+v (error %q)", req, res.Routes[0].Error)
	}
	// Sent only with the router's key.
	live := map[string]*SinkRuntime{}
	for name, sr := range rt.Sinks {
		c := *sr
		c.Sink = &securedSink{tokenSink{c: &http.Client{Transport: recordingTransport{}}}}
		live[name] = &c
	}
	res, err = rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: payload, Send: true}, TrialOptions{Sinks: live})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Routes[0].Result; r == nil || !strings.Contains(r.Error, "run this trial through the admin API") {
		t.Errorf("send to a secured sink without keys: %+v", r)
	}
	res, err = rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: payload, Send: true}, TrialOptions{Sinks: live,
		SigningKey: func(context.Context, string) (*rsa.PrivateKey, error) {
			return nil, fmt.Errorf("the sink has no signing key yet")
		}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Routes[0].Result; r == nil || r.Error != "not sent: no signing key: the sink has no signing key yet" {
		t.Errorf("send to a secured sink whose key is missing: %+v", r)
	}
}
