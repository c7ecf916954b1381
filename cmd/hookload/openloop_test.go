package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakePool is enough for servers that check no signature.
var fakePool = []signed{{Body: []byte(`{"event":"conversation.rated"}`), Sig: "x"}}

func newOpenResult() *Result {
	return &Result{Non2xx: map[string]int64{}, Errors: map[string]int64{}}
}

func openCfg(url string, rate float64, warmup, duration time.Duration) openConfig {
	return openConfig{URLs: []string{url}, Pool: fakePool, Rate: rate, Warmup: warmup, Duration: duration,
		MaxInflight: 256, Timeout: 10 * time.Second, MaxP99: 50 * time.Millisecond, MaxBacklog: time.Second, ClockTicks: 100}
}

// TestOpenLoopIssuesRateTimesDuration: the schedule, not the answers,
// decides how many requests leave, warm-up ones included, and only those
// due in the window are counted.
func TestOpenLoopIssuesRateTimesDuration(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	res := newOpenResult()
	if err := runOpen(context.Background(), openCfg(srv.URL, 200, 500*time.Millisecond, time.Second), res, io.Discard); err != nil {
		t.Fatal(err)
	}
	near := func(n, want int64) bool { return n >= want-1 && n <= want+1 }
	if !near(got.Load(), 300) {
		t.Errorf("server saw %d requests, want 200/s × 1.5 s = 300 ± 1", got.Load())
	}
	if !near(res.Requests, 200) || res.OK != res.Requests {
		t.Errorf("window: %d due, %d 2xx; want 200 ± 1, all 2xx", res.Requests, res.OK)
	}
	if res.Open.Late != 0 {
		t.Errorf("late %d: an idle server frees its slots long before 256 are taken", res.Open.Late)
	}
}

// TestOpenLoopRoundRobin: several URLs share the requests.
func TestOpenLoopRoundRobin(t *testing.T) {
	var a, b atomic.Int64
	mk := func(n *atomic.Int64) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	}
	sa, sb := mk(&a), mk(&b)
	defer sa.Close()
	defer sb.Close()
	cfg := openCfg(sa.URL, 100, 0, time.Second)
	cfg.URLs = append(cfg.URLs, sb.URL)
	if err := runOpen(context.Background(), cfg, newOpenResult(), io.Discard); err != nil {
		t.Fatal(err)
	}
	if a.Load() != 50 || b.Load() != 50 {
		t.Fatalf("requests %d and %d, want 50 each", a.Load(), b.Load())
	}
}

// TestOpenLoopStallShowsAsLatency: a server that answers slower than the
// offered rate, with one request in flight at a time, keeps the offered
// count (the requests queue behind the cap, counted late) and its latency
// from the scheduled time grows far beyond its service time, which is all
// a measurement from the actual send would show.
func TestOpenLoopStallShowsAsLatency(t *testing.T) {
	const service = 40 * time.Millisecond // 25/s with one in flight
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(service)
	}))
	defer srv.Close()
	cfg := openCfg(srv.URL, 50, 0, time.Second)
	cfg.MaxInflight = 1
	res := newOpenResult()
	if err := runOpen(context.Background(), cfg, res, io.Discard); err != nil {
		t.Fatal(err)
	}
	if res.Requests < 49 || res.OK != res.Requests {
		t.Fatalf("%d due, %d 2xx: want 50 due and answered however late", res.Requests, res.OK)
	}
	// The last request is due at 0.98 s and answered at about 2 s.
	if res.Latency.Max < 500 {
		t.Errorf("max latency %.1f ms from scheduled time: want the queue's wait (about 1 s), not the service time", res.Latency.Max)
	}
	if res.Open.Late < 20 {
		t.Errorf("late %d: want most requests to have waited for the one slot", res.Open.Late)
	}
	// The wait for the slot is the server's doing, not the scheduler's
	// (which would be about 1 s behind by the end if it were counted).
	if res.Open.SchedulerLagMS > 300 {
		t.Errorf("scheduler lag %.1f ms: the wait for a slot was counted as the load generator's", res.Open.SchedulerLagMS)
	}
	if res.Open.Hold.Held {
		t.Errorf("a server at half the offered rate held: %+v", res.Open.Hold)
	}
}

// TestOpenLoopStallWithoutCap: with room in flight, a server that stalls
// for a while then recovers shows the stall in the requests due during it.
func TestOpenLoopStallWithoutCap(t *testing.T) {
	gate := make(chan struct{})
	time.AfterFunc(400*time.Millisecond, func() { close(gate) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-gate }))
	defer srv.Close()
	res := newOpenResult()
	if err := runOpen(context.Background(), openCfg(srv.URL, 100, 0, time.Second), res, io.Discard); err != nil {
		t.Fatal(err)
	}
	if res.Latency.Max < 250 {
		t.Errorf("max %.1f ms: the first request, due at once, waited for the 400 ms stall", res.Latency.Max)
	}
	if res.Open.Late != 0 {
		t.Errorf("late %d with room for 256 in flight", res.Open.Late)
	}
}

// fakeRouter answers 202 announcing one delivery; with deliver, it first
// posts that delivery to sink as hookroute's http sink would (its own id in
// Idempotency-Key, the request's headers inside the body).
func fakeRouter(t *testing.T, sink string, deliver bool) *httptest.Server {
	var n atomic.Int64
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if deliver {
			body := fmt.Sprintf(`{"headers":{"content-type":"application/json","x-hookload-sched":%q},"payload":{}}`, r.Header.Get(stampHeader))
			req, _ := http.NewRequest(http.MethodPost, sink+"/deliver", strings.NewReader(body))
			req.Header.Set("Idempotency-Key", fmt.Sprintf("d_%d", n.Add(1)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				http.Error(w, "sink", http.StatusBadGateway)
				return
			}
			resp.Body.Close()
		}
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"id":"x","matched":["sad-chat"],"deliveries":1}`))
	}))
}

// TestOpenLoopBacklog: a router that delivers before it answers has no
// backlog and a recorded delivery lag; one that acknowledges and never
// delivers has all of its acknowledged events as backlog, and fails.
func TestOpenLoopBacklog(t *testing.T) {
	sink := httptest.NewServer(newSinkCounter())
	defer sink.Close()

	rt := fakeRouter(t, sink.URL, true)
	cfg := openCfg(rt.URL, 100, 200*time.Millisecond, time.Second)
	cfg.SinkStats, cfg.Stamp, cfg.DrainTimeout, cfg.DrainStall = sink.URL+"/stats", true, 2*time.Second, time.Second
	res := newOpenResult()
	if err := runOpen(context.Background(), cfg, res, io.Discard); err != nil {
		t.Fatal(err)
	}
	rt.Close()
	bl := res.Open.Backlog
	if bl == nil || bl.Events != 0 || bl.Expected != 120 || !bl.Drained || bl.FinalDelivered != 120 {
		t.Fatalf("delivering router: backlog %+v, want 0 of 120 expected, drained", bl)
	}
	if bl.Lag == nil || bl.LagSamples < 95 || bl.LagSamples > 105 || bl.Lag.Max > res.Latency.Max {
		t.Errorf("delivery lag %+v over %d samples: want about the window's 100, each under its acknowledgement", bl.Lag, bl.LagSamples)
	}

	rt = fakeRouter(t, sink.URL, false)
	defer rt.Close()
	cfg.URLs, cfg.DrainTimeout = []string{rt.URL}, 0
	res = newOpenResult()
	if err := runOpen(context.Background(), cfg, res, io.Discard); err != nil {
		t.Fatal(err)
	}
	bl = res.Open.Backlog
	if bl.Events != 120 || bl.Seconds != 1.2 || bl.Drained {
		t.Fatalf("silent router: backlog %+v, want all 120 acknowledged events (1.2 s at 100/s), not drained", bl)
	}
	if res.Open.Hold.Held || !strings.Contains(strings.Join(res.Open.Hold.Why, ";"), "backlog") {
		t.Errorf("silent router held: %+v", res.Open.Hold)
	}
}

func TestOpenLoopPoolTooSmall(t *testing.T) {
	cfg := openCfg("http://127.0.0.1:1", 1000, time.Second, time.Second)
	cfg.Unique = true
	err := runOpen(context.Background(), cfg, newOpenResult(), io.Discard)
	pe, ok := err.(*errPoolExhausted)
	if !ok || pe.Need < 2000 {
		t.Fatalf("err %v, want a pool exhausted error asking for at least 2000 bodies", err)
	}
}

func TestDeliveryStamp(t *testing.T) {
	at := time.UnixMicro(1765000000123456)
	h := http.Header{}
	h.Set(stampHeader, "1765000000123456")
	if got, ok := deliveryStamp(h, nil); !ok || !got.Equal(at) {
		t.Errorf("header: %v %v", got, ok)
	}
	body := []byte(`{"event":"x","headers":{"content-type":"application/json","x-hookload-sched":"1765000000123456"},"payload":{}}`)
	if got, ok := deliveryStamp(http.Header{}, body); !ok || !got.Equal(at) {
		t.Errorf("body: %v %v", got, ok)
	}
	for _, b := range []string{`{}`, `{"x-hookload-sched":"soon"}`, `{"x-hookload-sched":"12`} {
		if _, ok := deliveryStamp(http.Header{}, []byte(b)); ok {
			t.Errorf("stamp found in %s", b)
		}
	}
}

func TestJudge(t *testing.T) {
	ok := func() *Result {
		return &Result{OK: 100, Non2xx: map[string]int64{}, Errors: map[string]int64{}, Latency: LatencyMS{P99: 12},
			Open: &OpenLoop{OfferedPerS: 100, Backlog: &Backlog{Events: 100, Seconds: 1}}}
	}
	if h := judge(ok(), 50*time.Millisecond, time.Second); !h.Held {
		t.Errorf("a clean step, backlog exactly 1 s: %+v", h)
	}
	for name, spoil := range map[string]func(*Result){
		"non-2xx": func(r *Result) { r.Non2xx["503"] = 1 },
		"errors":  func(r *Result) { r.Errors["timeout"] = 1 },
		"p99":     func(r *Result) { r.Latency.P99 = 50 },
		"backlog": func(r *Result) { r.Open.Backlog.Events, r.Open.Backlog.Seconds = 101, 1.01 },
	} {
		r := ok()
		spoil(r)
		if h := judge(r, 50*time.Millisecond, time.Second); h.Held || !strings.Contains(strings.Join(h.Why, ";"), name) {
			t.Errorf("%s: %+v", name, h)
		}
	}
}

func TestLadderReport(t *testing.T) {
	step := func(label string, rate float64, held bool) *Result {
		h := Hold{Held: held}
		if !held {
			h.Why = []string{"p99 80.0 ms ≥ 50 ms"}
		}
		return &Result{Label: label, URL: "http://x", Latency: LatencyMS{P99: 5},
			Open: &OpenLoop{OfferedPerS: rate, AchievedPerS: rate, Hold: h, Backlog: &Backlog{}}}
	}
	results := []*Result{
		step("sqlite", 400, true), step("sqlite", 600, true), step("sqlite", 900, false),
		step("peer", 400, true), step("peer", 600, true), step("peer", 900, true), step("peer", 1350, false),
		// Held after a failure: does not count.
		step("pg", 400, true), step("pg", 600, false), step("pg", 900, true),
		step("top", 400, true),
	}
	// A load generator that slipped by half the p99 bound is flagged.
	results[len(results)-1].Open.SchedulerLagMS, results[len(results)-1].Open.Hold.MaxP99MS = 30, 50
	var b bytes.Buffer
	printLadder(&b, nil, results, []string{"sqlite/peer", "pg/sqlite", "top/peer", "sqlite/none"})
	out := b.String()
	for _, want := range []string{
		"### Ladder: sqlite",
		"| 900 | 900 | 0.00 | 5.00 | 0.00 | 0 | 0 (0.00 s) | – | 0/0 | 0 | 0.00 | 0.0 | – | **no**: p99 80.0 ms ≥ 50 ms |",
		"| sqlite | 600 | 600 | 3 | a failed step |",
		"| pg | 400 | 400 | 2 | a failed step |",
		"| top | ≥ 400 |",
		"| 30.0 ⚠ | – | yes |",
		"⚠ the load generator fell behind",
		"each is good to one step, a factor of 1.50 either way",
		"- sqlite / peer: 0.67\n",
		"- pg / sqlite: 0.67\n",
		"- top / peer: 0.44 (a ladder ran out of steps",
		"- sqlite / none: – (not both measured)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ladder report lacks %q:\n%s", want, out)
		}
	}
}
