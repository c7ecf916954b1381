package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowSink answers 200 after a short delay, so that deliveries are in
// flight when the router is killed, and records each request's
// Idempotency-Key and the event id its default body carries.
type slowSink struct {
	delay    time.Duration
	inflight atomic.Int32 // requests being answered now
	mu       sync.Mutex
	reqs     []sinkReq
}

type sinkReq struct{ key, event string }

func (s *slowSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	b, _ := io.ReadAll(r.Body)
	var ev struct{ ID string }
	json.Unmarshal(b, &ev)
	time.Sleep(s.delay)
	s.mu.Lock()
	s.reqs = append(s.reqs, sinkReq{r.Header.Get("Idempotency-Key"), ev.ID})
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *slowSink) received() []sinkReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkReq(nil), s.reqs...)
}

// TestRepeatedKillsLoseNothing is docs/reliability.md's D-01, condensed: events
// stream in at about 100 a second from senders that retry as SalesIQ does
// (on a connection error or a 5xx), while the router is killed with
// SIGKILL five times at random moments and restarted. Every acknowledged
// event is delivered; no event fails every sender attempt; each event is
// delivered under one idempotency key; the only repeats are of attempts
// whose answer the kill kept from being recorded, at most Concurrency in
// flight plus 2×Concurrency being recorded per kill; the file passes
// integrity_check.
func TestRepeatedKillsLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s: a stream of events through five crashes")
	}
	sink := &slowSink{delay: 10 * time.Millisecond}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	const concurrency = 4
	config := auditConfig(fmt.Sprint("concurrency: ", concurrency),
		"retry: {max_attempts: 50, initial: 50ms, max_interval: 200ms, multiplier: 2}")
	env := auditEnv(t, srv.URL)
	dir := t.TempDir()
	var cur atomic.Pointer[routerProc]
	cur.Store(startRouter(t, dir, config, env))

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	// Senders: 600 events at about 100 a second, each retried every 100 ms
	// for up to 8 s, as long as the router is down or answers 5xx.
	const n = 600
	stream := streamEvents(t, n, 90000, 10*time.Millisecond, func() string { return cur.Load().ingest })

	// Chaos: five kills, at least a second apart, each followed by a
	// restart 0.1–0.5 s later.
	const kills = 5
	for k := range kills {
		time.Sleep(time.Second + time.Duration(rng.IntN(300))*time.Millisecond)
		p := cur.Load()
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p.done <- nil // for startRouter's cleanup
		if !stream.sending.Load() {
			t.Logf("kill %d came after the last event was sent", k+1)
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		cur.Store(startRouter(t, dir, config, env))
	}
	acked, failed := stream.wait()
	if failed > 0 {
		t.Errorf("%d of %d events failed every sender attempt", failed, n)
	}
	ackedN := len(acked)
	if ackedN+failed != n {
		t.Errorf("%d acknowledged + %d failed, want %d in all", ackedN, failed, n)
	}

	// A restarted router releases its predecessor's leases (one process
	// owns a SQLite file), so what was in flight is sent again at once.
	eventually(t, 30*time.Second, "every acknowledged event delivered", func() bool {
		got := map[string]bool{}
		for _, r := range sink.received() {
			got[r.event] = true
		}
		for id := range acked {
			if !got[id] {
				return false
			}
		}
		return true
	})
	p := cur.Load()
	eventually(t, 10*time.Second, "nothing pending", func() bool {
		return p.query(`SELECT count(*) FROM deliveries WHERE status <> 'delivered'`) == 0
	})

	reqs := sink.received()
	keyOf := map[string]string{} // event id → idempotency key
	for _, r := range reqs {
		if k, ok := keyOf[r.event]; ok && k != r.key {
			t.Errorf("event %s delivered under two keys: %s and %s", r.event, k, r.key)
		}
		keyOf[r.event] = r.key
	}
	dups := len(reqs) - len(keyOf)
	t.Logf("%d events acknowledged (%d send attempts), %d sink requests, %d repeats after %d kills",
		ackedN, stream.attempts.Load(), len(reqs), dups, kills)
	if limit := kills * 3 * concurrency; dups > limit {
		t.Errorf("%d repeated deliveries after %d kills, want at most %d", dups, kills, limit)
	}
	if len(keyOf) != ackedN {
		t.Errorf("%d events delivered, %d acknowledged", len(keyOf), ackedN)
	}

	db, err := sql.Open("sqlite", "file:"+p.db+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
}
