package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
)

// arrivalSink records when each event's delivery arrived, by the event id
// in the delivered body (the http sink's default body is the event view).
type arrivalSink struct {
	mu      sync.Mutex
	arrived map[string][]time.Time
}

func (s *arrivalSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	var ev struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &ev); err != nil || ev.ID == "" {
		http.Error(w, "no event id in the body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.arrived[ev.ID] = append(s.arrived[ev.ID], at)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *arrivalSink) snapshot() map[string][]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]time.Time, len(s.arrived))
	for k, v := range s.arrived {
		out[k] = slices.Clone(v)
	}
	return out
}

// TestSustainedLoadDeliversPromptly is docs/reliability.md's L-01 at its PR size,
// condensed: signed events at a steady 300 a second (open loop, as SalesIQ
// sends them, not waiting for answers) for 10 s. Every one is acknowledged,
// p99 within 150 ms, and delivered once, p99 within 500 ms of its
// acknowledgement and none later than 5 s. At this rate the ingest is far
// from saturated, so deliveries must not be held back for it
// (acknowledgements first applies to bursts only).
func TestSustainedLoadDeliversPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("about 15 s: 3,000 signed events at 300/s")
	}
	sink := &arrivalSink{arrived: map[string][]time.Time{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	p := startRouter(t, t.TempDir(), auditConfig(), auditEnv(t, srv.URL))

	const rate, n, senders = 300, 3000, 32
	events := signEvents(t, n, "steady", "steady")
	start := time.Now()
	answers := postEvents(t, p.ingest+"/hooks/salesiq", events, senders, func(i int) time.Time {
		return start.Add(time.Duration(i) * time.Second / rate)
	})
	lat := latencies(t, answers)

	eventually(t, 30*time.Second, "every event delivered", func() bool { return len(sink.snapshot()) >= n })
	time.Sleep(200 * time.Millisecond) // room for a repeat to show
	arrived := sink.snapshot()
	lags := make([]time.Duration, 0, n)
	for i, ev := range events {
		at := arrived[ev.id]
		if len(at) != 1 {
			t.Errorf("event %d (%s) delivered %d times, want once", i, ev.id, len(at))
			continue
		}
		lags = append(lags, at[0].Sub(answers[i].at))
	}
	slices.Sort(lags)
	ackP99, lagP99, lagMax := lat[n*99/100], lags[len(lags)*99/100], lags[len(lags)-1]

	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	deferred := regexp.MustCompile(`(?m)^hookroute_delivery_claims_deferred_total\{sink="audit"\} (\S+)$`).FindSubmatch(metrics)
	t.Logf("%d events at %d/s: ack p50 %v, p99 %v, max %v; delivered after the ack: p50 %v, p99 %v, max %v; claims deferred for the ingest: %q",
		n, rate, lat[n/2], ackP99, lat[n-1], lags[len(lags)/2], lagP99, lagMax, deferred)
	if ackP99 > 150*time.Millisecond {
		t.Errorf("ack p99 %v, want ≤ 150 ms", ackP99)
	}
	if lagP99 > 500*time.Millisecond || lagMax > 5*time.Second {
		t.Errorf("delivery after the ack: p99 %v (want ≤ 500 ms), max %v (want ≤ 5 s)", lagP99, lagMax)
	}
	// A claim held back for a saturated ingest waits up to 250 ms: were the
	// holding back to fire at this rate, the median would show it.
	if lagP50 := lags[len(lags)/2]; lagP50 > 50*time.Millisecond {
		t.Errorf("delivery after the ack: median %v, want ≤ 50 ms", lagP50)
	}
}
