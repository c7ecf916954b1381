package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/sqlite"
)

const canarySecret = "CANARY-admin-9f8e7d6c5b4a"

// adminConfig has tokens with different scopes; every secret slot holds a
// canary so that a leak anywhere shows.
const adminConfig = `
admin:
  tokens:
    - {name: ops, token: "${OPS_TOKEN}", scopes: [read, replay, reload]}
    - {name: viewer, token: "${VIEW_TOKEN}", scopes: [read]}
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
  - {name: gh, type: github, secret: "${GH_SECRET}"}
sinks:
  - {name: a, type: count, pause_after: 0, retry: {max_attempts: 2, initial: 10ms, max_interval: 20ms}}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: a, text: "{{ .visitor.name }}"}]}
`

type adminEnv struct {
	logs  *lockedBuffer
	r     *dispatch.Router
	f     *countingFactory
	api   http.Handler
	store router.Store
	now   *fakeClock
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func adminSetup(t *testing.T, clock *fakeClock) *adminEnv {
	t.Helper()
	env := map[string]string{"PUB": pubPEM(), "OPS_TOKEN": "ops-" + canarySecret, "VIEW_TOKEN": "view-" + canarySecret, "GH_SECRET": "gh-" + canarySecret}
	f := &countingFactory{}
	rt, st := loadWithStore(t, adminConfig, f, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	logs := &lockedBuffer{}
	o := dispatch.Options{PollInterval: 20 * time.Millisecond, Metrics: dispatch.NewMetrics(prometheus.NewRegistry()), PruneEvery: -1,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if clock != nil {
		o.Now = clock.Now
	}
	o.Reload = func() (*rules.Runtime, error) { return rt, nil }
	r := dispatch.New(rt, st, o)
	reg := prometheus.NewRegistry()
	return &adminEnv{logs: logs, r: r, f: f, api: admin.Handler(r, reg), store: st, now: clock}
}

func (e *adminEnv) call(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.api.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Body)
	return w.Code, string(b)
}

func (e *adminEnv) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAdminAuth(t *testing.T) {
	e := adminSetup(t, nil)
	routes := []struct{ method, path, scope string }{
		{"GET", "/metrics", "read"},
		{"GET", "/api/events", "read"},
		{"GET", "/api/events/x", "read"},
		{"GET", "/api/deliveries", "read"},
		{"GET", "/api/deliveries/x", "read"},
		{"GET", "/api/sinks", "read"},
		{"POST", "/api/deliveries/x/replay", "replay"},
		{"POST", "/api/deliveries/replay", "replay"},
		{"POST", "/api/sinks/a/resume", "replay"},
		{"POST", "/api/reload", "reload"},
	}
	for _, rt := range routes {
		if code, _ := e.call(t, rt.method, rt.path, "", ""); code != 401 {
			t.Errorf("%s %s without a token: %d, want 401", rt.method, rt.path, code)
		}
		if code, _ := e.call(t, rt.method, rt.path, "wrong-"+canarySecret, ""); code != 401 {
			t.Errorf("%s %s with a wrong token: %d, want 401", rt.method, rt.path, code)
		}
		viewerCode, _ := e.call(t, rt.method, rt.path, "view-"+canarySecret, "{}")
		if rt.scope != "read" && viewerCode != 403 {
			t.Errorf("%s %s with a read-only token: %d, want 403", rt.method, rt.path, viewerCode)
		}
		if rt.scope == "read" && (viewerCode == 401 || viewerCode == 403) {
			t.Errorf("%s %s with a read token: %d", rt.method, rt.path, viewerCode)
		}
	}
}

func TestAdminListsAndReplays(t *testing.T) {
	e := adminSetup(t, nil)
	a := e.f.sinks["a"]
	a.fail = func(int) error { return router.Permanent(errors.New("404 channel_not_found")) }
	for i := 0; i < 5; i++ {
		if w := post(t, e.r.IngestHandler(), event(string(rune('a'+i)), "sad")); w.Code != 202 {
			t.Fatalf("ingest: %d", w.Code)
		}
	}
	e.run(t)
	ops := "ops-" + canarySecret
	waitFor(t, "five dead deliveries", func() bool {
		_, body := e.call(t, "GET", "/api/deliveries?status=dead", ops, "")
		return strings.Count(body, `"status":"dead"`) == 5
	})

	// Pagination: pages of 2 give every delivery once.
	seen := map[string]bool{}
	cursor := ""
	for page := 0; page < 5; page++ {
		code, body := e.call(t, "GET", "/api/deliveries?limit=2&sink=a&cursor="+cursor, ops, "")
		if code != 200 {
			t.Fatalf("list: %d %s", code, body)
		}
		var out struct {
			Items      []struct{ ID string }
			NextCursor string `json:"next_cursor"`
		}
		json.Unmarshal([]byte(body), &out)
		for _, it := range out.Items {
			if seen[it.ID] {
				t.Fatalf("delivery %s on two pages", it.ID)
			}
			seen[it.ID] = true
		}
		if cursor = out.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 5 {
		t.Fatalf("pages held %d deliveries, want 5", len(seen))
	}
	if code, body := e.call(t, "GET", "/api/deliveries?status=bogus", ops, ""); code != 400 {
		t.Errorf("bad filter: %d %s", code, body)
	}
	if code, body := e.call(t, "GET", "/api/events?source=siq", ops, ""); code != 200 || strings.Count(body, `"source":"siq"`) != 5 {
		t.Errorf("events: %d %s", code, body)
	}
	code, body := e.call(t, "GET", "/api/events/conversation.rated:a:1", ops, "")
	if code != 200 || !strings.Contains(body, `"deliveries":[`) || !strings.Contains(body, `"payload":{`) {
		t.Errorf("event: %d %s", code, body)
	}

	// The sink is fixed; one replay, then the rest in bulk.
	a.mu.Lock()
	a.fail = nil
	a.mu.Unlock()
	var first string
	for id := range seen {
		first = id
		break
	}
	code, body = e.call(t, "POST", "/api/deliveries/"+first+"/replay", ops, "")
	if code != 200 || !strings.Contains(body, `"replayed_by":"ops"`) {
		t.Fatalf("replay one: %d %s", code, body)
	}
	waitFor(t, "the replayed delivery", func() bool { return len(a.delivered()) == 1 })
	code, body = e.call(t, "POST", "/api/deliveries/replay", ops, `{"status":"dead","sink":"a","rate":1000}`)
	if code != 200 || !strings.Contains(body, `"replayed":4`) {
		t.Fatalf("bulk replay: %d %s", code, body)
	}
	waitFor(t, "every replayed delivery", func() bool { return len(a.delivered()) == 5 })
	time.Sleep(100 * time.Millisecond)
	got := map[string]int{}
	for _, id := range a.delivered() {
		got[id]++
	}
	for id := range seen {
		if got[id] != 1 {
			t.Errorf("delivery %s delivered %d times after replay, want once with its original id", id, got[id])
		}
	}
	code, body = e.call(t, "GET", "/api/deliveries/"+first, ops, "")
	if code != 200 || !strings.Contains(body, `"status":"delivered"`) || strings.Count(body, `"outcome"`) != 2 {
		t.Errorf("delivery after replay: %d %s", code, body)
	}

	// Nothing the API returns, nor the metrics, nor the log, holds a
	// secret.
	for _, p := range []string{"/api/deliveries", "/api/events", "/api/sinks", "/api/deliveries/" + first, "/metrics"} {
		if _, body := e.call(t, "GET", p, ops, ""); strings.Contains(body, canarySecret) {
			t.Errorf("%s leaks a secret", p)
		}
	}
	if strings.Contains(e.logs.String(), canarySecret) {
		t.Error("the log leaks a secret")
	}
	if !strings.Contains(e.logs.String(), `"by":"ops"`) {
		t.Error("replays are not logged with the token's name")
	}
}

func TestRetentionPrunesOldHistory(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := adminSetup(t, clock)
	for i := 0; i < 3; i++ {
		post(t, e.r.IngestHandler(), event("old"+string(rune('a'+i)), "sad"))
	}
	e.run(t)
	waitFor(t, "old deliveries delivered", func() bool { return len(e.f.sinks["a"].delivered()) == 3 })
	clock.Add(59 * 24 * time.Hour)
	post(t, e.r.IngestHandler(), event("new", "sad"))
	waitFor(t, "new delivery", func() bool { return len(e.f.sinks["a"].delivered()) == 4 })
	clock.Add(2 * 24 * time.Hour) // the first three are now 61 days old
	a := e.f.sinks["a"]
	a.mu.Lock()
	a.fail = func(int) error { return errors.New("down") }
	a.mu.Unlock()
	post(t, e.r.IngestHandler(), event("pending", "sad"))

	n := e.r.PruneOnce(context.Background())
	if n != 6 { // 3 deliveries + 3 events
		t.Errorf("pruned %d rows, want 6", n)
	}
	ds, _ := e.store.ListDeliveries(context.Background(), router.DeliveryFilter{})
	if len(ds) != 2 {
		t.Errorf("%d deliveries left, want the new one and the pending one", len(ds))
	}
	if _, err := e.store.GetEvent(context.Background(), "siq", "conversation.rated:new:1"); err != nil {
		t.Errorf("the 2-day-old event was pruned: %v", err)
	}
}

// pausingRouter is adminConfig with sink a paused after 3 failures and
// probed every probe, on a fresh SQLite store; not yet running. retry, if
// given, replaces the sink's retry settings.
func pausingRouter(t *testing.T, probe string, retry ...string) (*dispatch.Router, *sqlite.Store, *countingSink) {
	t.Helper()
	src := strings.Replace(adminConfig, "pause_after: 0, retry: {max_attempts: 2,", "pause_after: 3, pause_probe: "+probe+", retry: {max_attempts: 2,", 1)
	if len(retry) > 0 {
		src = strings.Replace(src, "retry: {max_attempts: 2, initial: 10ms, max_interval: 20ms}", "retry: "+retry[0], 1)
	}
	env := map[string]string{"PUB": pubPEM(), "OPS_TOKEN": "ops-" + canarySecret, "VIEW_TOKEN": "view-" + canarySecret, "GH_SECRET": "gh-" + canarySecret}
	f := &countingFactory{}
	rt, st := loadWithStore(t, src, f, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, PruneEvery: -1}), st, f.sinks["a"]
}

// sinkPaused reports whether the store records sink as paused.
func sinkPaused(st *sqlite.Store, sink string) bool {
	s, _ := st.SinkStates(context.Background())
	return s[sink].Paused
}

// TestPauseDontDrop: a sink failing continuously is paused; its deliveries
// wait instead of running out of attempts, and the first success resumes
// it.
func TestPauseDontDrop(t *testing.T) {
	r, st, a := pausingRouter(t, "50ms")
	a.setDown(true)
	for i := 0; i < 5; i++ {
		post(t, r.IngestHandler(), event("p"+string(rune('a'+i)), "sad"))
	}
	runRouter(t, r)

	waitFor(t, "the sink paused", func() bool { return sinkPaused(st, "a") })
	time.Sleep(300 * time.Millisecond) // several probes, each past max_attempts
	ds, _ := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "a"})
	for _, d := range ds {
		if d.Status != router.StatusPending {
			t.Errorf("delivery %s is %s while its sink is paused, want pending", d.ID, d.Status)
		}
	}
	a.setDown(false)
	waitFor(t, "all delivered after the sink recovered", func() bool { return len(a.delivered()) == 5 })
	if sinkPaused(st, "a") {
		t.Error("the sink is still paused after a success")
	}
}

// TestResumeSendsWaitingRetriesAtOnce: the retries that failed before a
// sink was paused wait on their backoff (an hour here); when a probe
// succeeds and the sink resumes, they go at once instead (the breaker
// closing, docs/reliability.md's promises).
func TestResumeSendsWaitingRetriesAtOnce(t *testing.T) {
	r, st, a := pausingRouter(t, "100ms", "{max_attempts: 10, initial: 1h, max_interval: 1h}")
	a.setDown(true)
	for i := 0; i < 6; i++ {
		post(t, r.IngestHandler(), event("w"+string(rune('a'+i)), "sad"))
	}
	runRouter(t, r)
	waitFor(t, "the sink paused", func() bool { return sinkPaused(st, "a") })
	waitFor(t, "every delivery attempted once", func() bool {
		ds, _ := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "a"})
		for _, d := range ds {
			if d.Attempts == 0 {
				return false
			}
		}
		return len(ds) == 6
	})
	ds, _ := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "a"})
	waiting := 0
	for _, d := range ds {
		if time.Until(d.NextAttemptAt) > 30*time.Minute {
			waiting++
		}
	}
	if waiting == 0 {
		t.Fatal("no delivery waits on its hour of backoff: the test proves nothing")
	}
	a.setDown(false)
	waitFor(t, "all delivered once the sink resumed", func() bool { return len(a.delivered()) == 6 })
	t.Logf("%d of 6 deliveries were waiting on an hour of backoff at the resume", waiting)
}

// TestPausedAtStartProbedAtOnce: the pause outlives a restart, but the
// first probe does not wait a whole pause_probe: after a crash or deploy
// the outage may be over. And once the probe succeeds, the backlog goes at
// once, without waiting for a new event or the next interval.
func TestPausedAtStartProbedAtOnce(t *testing.T) {
	r, st, a := pausingRouter(t, "1h")
	// Paused by an earlier process, which stopped with the sink down.
	if err := st.SetSinkPaused(context.Background(), "a", true, "3 attempts in a row failed", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		post(t, r.IngestHandler(), event("r"+string(rune('a'+i)), "sad"))
	}
	runRouter(t, r)

	waitFor(t, "the paused sink probed and resumed, long before its 1h probe interval", func() bool { return len(a.delivered()) == 3 })
	if sinkPaused(st, "a") {
		t.Error("the sink is still paused after its probe succeeded")
	}
}

// TestBackpressureHoldsTheSink: a 429 with Retry-After is backpressure,
// not failure: it holds the whole sink (a new event's delivery waits too),
// spends no attempt and does not pause the sink, however many come; and an
// operator's pause and resume keeps each delivery's Retry-After floor.
func TestBackpressureHoldsTheSink(t *testing.T) {
	r, st, a := pausingRouter(t, "50ms", "{max_attempts: 2, initial: 1m, max_interval: 1m}")
	a.fail = func(int) error {
		return &router.RetryAfterError{Err: errors.New("HTTP 429 Too Many Requests"), After: 2 * time.Hour}
	}
	for i := 0; i < 3; i++ {
		post(t, r.IngestHandler(), event("l"+string(rune('a'+i)), "sad"))
	}
	runRouter(t, r)
	waitFor(t, "the sink held", func() bool {
		s, _ := st.SinkStates(context.Background())
		return time.Until(s["a"].HeldUntil) > time.Hour
	})
	// Requests sent before the first answer came back got theirs; then
	// nothing: not the others, not a new event's.
	time.Sleep(100 * time.Millisecond)
	sent := a.requests()
	post(t, r.IngestHandler(), event("fresh", "sad"))
	time.Sleep(300 * time.Millisecond)
	if got := a.requests(); got != sent || sent > 3 {
		t.Fatalf("%d requests before the new event and %d after; want the first answer's hold to stop the rest", sent, got)
	}
	if sinkPaused(st, "a") {
		t.Error("the sink was paused by 429s with Retry-After (pause_after: 3): backpressure counted as failure")
	}
	ds, _ := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "a"})
	if len(ds) != 4 {
		t.Fatalf("%d deliveries, want 4", len(ds))
	}
	for _, d := range ds {
		if d.Status != router.StatusPending || d.Attempts != 0 {
			t.Errorf("delivery %s: %s after %d attempts, want pending with none spent", d.ID, d.Status, d.Attempts)
		}
	}
	// An operator's pause and resume pulls waiting retries forward, but
	// never past their floor.
	if err := st.SetSinkPaused(context.Background(), "a", true, "ops", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.SetSinkPaused(context.Background(), "a", false, "ops", time.Now()); err != nil {
		t.Fatal(err)
	}
	ds, _ = st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "a"})
	for _, d := range ds {
		if d.LastError == "" {
			continue // the new event's: never attempted, so never pulled forward
		}
		if until := time.Until(d.NextAttemptAt); until < time.Hour {
			t.Errorf("delivery %s due in %v after the resume, want its Retry-After floor (about 2h)", d.ID, until)
		}
	}
}
