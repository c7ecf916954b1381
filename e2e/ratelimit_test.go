package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// rateLimitedSink accepts perSecond requests a second (a token bucket of
// one second's worth) and answers the rest 429 with a Retry-After of
// retryAfter, announcing a window in which it takes nothing; a request
// inside an announced window gets a 429 for the rest of it.
type rateLimitedSink struct {
	perSecond  int
	retryAfter time.Duration

	mu          sync.Mutex
	limiter     *rate.Limiter
	windowEnd   time.Time
	requests    int
	inWindow    int // requests that arrived inside a window already announced
	refused     int
	accepted    map[string]int // Idempotency-Key → times accepted
	firstAt     time.Time
	lastAccepAt time.Time
}

func newRateLimitedSink(perSecond int, retryAfter time.Duration) *rateLimitedSink {
	return &rateLimitedSink{perSecond: perSecond, retryAfter: retryAfter,
		limiter: rate.NewLimiter(rate.Limit(perSecond), perSecond), accepted: map[string]int{}}
}

func (s *rateLimitedSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.requests++
	if s.firstAt.IsZero() {
		s.firstAt = now
	}
	if now.Before(s.windowEnd) {
		s.inWindow++
		s.refused++
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(s.windowEnd.Sub(now).Seconds()))))
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if !s.limiter.AllowN(now, 1) {
		s.refused++
		s.windowEnd = now.Add(s.retryAfter)
		w.Header().Set("Retry-After", fmt.Sprint(int(s.retryAfter.Seconds())))
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	s.accepted[r.Header.Get("Idempotency-Key")]++
	s.lastAccepAt = now
	w.WriteHeader(http.StatusOK)
}

type rateLimitStats struct {
	requests, inWindow, refused, distinct, total int
	rate                                         float64 // accepted per second, first request to last acceptance
}

func (s *rateLimitedSink) stats() rateLimitStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := rateLimitStats{requests: s.requests, inWindow: s.inWindow, refused: s.refused, distinct: len(s.accepted)}
	for _, n := range s.accepted {
		st.total += n
	}
	if d := s.lastAccepAt.Sub(s.firstAt); d > 0 {
		st.rate = float64(st.total) / d.Seconds()
	}
	return st
}

// The receiver of the rate-limit tests: 50 requests a second, then 429
// with Retry-After: 3. Deliveries get 8 attempts, as in the attack that
// found 126 of 1,000 events dead.
const (
	limitPerSecond  = 50
	limitRetryAfter = 3 * time.Second
	limitEvents     = 1000
	limitSinkLines  = "retry: {max_attempts: 8, initial: 100ms, max_interval: 2s}"
)

// checkRateLimited holds a run against a rateLimitedSink to the targets: 0
// dead, every event accepted exactly once, a delivery rate of at least 0.6
// of what the receiver accepts, under 5 % of requests inside a window the
// receiver had announced.
func checkRateLimited(t *testing.T, sink *rateLimitedSink, dead func() int) {
	t.Helper()
	eventually(t, 2*limitEvents/limitPerSecond*time.Second+30*time.Second, "every event accepted by the rate-limited receiver", func() bool {
		return sink.stats().distinct >= limitEvents
	})
	time.Sleep(300 * time.Millisecond) // room for a repeat to show
	st := sink.stats()
	share := float64(st.inWindow) / float64(st.requests)
	t.Logf("rate-limited receiver (%d/s, Retry-After %v): %d events accepted at %.1f/s (%.2f of its rate); %d requests, %d refused, %d (%.1f %%) inside an announced window; %d accepted twice",
		limitPerSecond, limitRetryAfter, st.distinct, st.rate, st.rate/limitPerSecond, st.requests, st.refused, st.inWindow, 100*share, st.total-st.distinct)
	if n := dead(); n != 0 {
		t.Errorf("%d deliveries dead against a receiver that only limits its rate, want none", n)
	}
	if st.rate < 0.6*limitPerSecond {
		t.Errorf("delivery rate %.1f/s, want at least 0.6 × %d/s", st.rate, limitPerSecond)
	}
	if share >= 0.05 {
		t.Errorf("%.1f %% of requests inside a window the receiver had announced, want under 5 %%", 100*share)
	}
	if st.total != st.distinct {
		t.Errorf("%d events accepted more than once", st.total-st.distinct)
	}
}

// TestRateLimitedReceiverSQLite: 1,000 events to a receiver that takes 50
// a second; a 429's Retry-After holds the whole sink and spends no attempt.
func TestRateLimitedReceiverSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s: 1,000 deliveries at a receiver's 50 a second")
	}
	sink := newRateLimitedSink(limitPerSecond, limitRetryAfter)
	srv := httptest.NewServer(sink)
	defer srv.Close()
	p := startRouter(t, t.TempDir(), auditConfig(limitSinkLines), auditEnv(t, srv.URL))
	latencies(t, postEvents(t, p.ingest+"/hooks/salesiq", signEvents(t, limitEvents, "limited", "limited"), 8, nil)) // every one 202
	checkRateLimited(t, sink, func() int { return p.query(`SELECT count(*) FROM deliveries WHERE status = 'dead'`) })
	if n := p.query(`SELECT count(*) FROM sink_state WHERE sink = 'audit' AND paused = 1`); n != 0 {
		t.Error("the sink was paused by 429s")
	}
}

// TestRateLimitedReceiverPostgres: the same against two replicas sharing
// one PostgreSQL database, events posted to both: the hold one replica
// records stops the other's claims too.
func TestRateLimitedReceiverPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s: 1,000 deliveries at a receiver's 50 a second")
	}
	url, conn := freshSchema(t, postgresURL(t))
	sink := newRateLimitedSink(limitPerSecond, limitRetryAfter)
	srv := httptest.NewServer(sink)
	defer srv.Close()
	env := []string{"TEST_STORE_URL=" + url, "TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL}
	old := "retry: {max_attempts: 50, initial: 50ms, max_interval: 500ms, multiplier: 2}"
	if !strings.Contains(replicaConfig, old) {
		t.Fatal("replicaConfig has no retry line to replace")
	}
	config := strings.Replace(replicaConfig, old, limitSinkLines, 1)
	procs := []*routerProc{startRouter(t, t.TempDir(), config, env), startRouter(t, t.TempDir(), config, env)}
	events := signEvents(t, limitEvents, "limited", "limited")
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			half := events[i*limitEvents/2 : (i+1)*limitEvents/2]
			latencies(t, postEvents(t, p.ingest+"/hooks/salesiq", half, 8, nil))
		}()
	}
	wg.Wait()
	checkRateLimited(t, sink, func() int {
		return countRows(t, conn, url, `SELECT count(*) FROM $S.deliveries WHERE status = 'dead'`)
	})
	if n := countRows(t, conn, url, `SELECT count(*) FROM $S.sink_state WHERE paused`); n != 0 {
		t.Error("the sink was paused by 429s")
	}
}
