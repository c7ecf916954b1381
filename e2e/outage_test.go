package e2e

import (
	"net/http/httptest"
	"testing"
	"time"
)

// TestOutageThenRecovery is docs/reliability.md's R-01 at its PR size: 1,000
// signed events at 200 a second while the sink answers 503, for 10 s from
// the first event; then it recovers. During the outage nothing is dropped
// or goes dead and no delivery spends more than 5 attempts (the sink is
// paused after 100 failures in a row and probed, here every 3 s instead of
// the default 30 s to keep the test short). After the recovery the first
// successful probe resumes the sink, its waiting retries fall due at once,
// and every event arrives exactly once, well inside the plan's 120 s.
//
// The plan also wants ingest p99 unaffected by the outage (at most 1.2× the
// baseline): the same 1,000 events at 200 a second are first sent to the
// healthy sink, and the outage's p99 is held to 1.2× theirs plus 10 ms,
// the slack a shared two-core machine running -race needs for a p99 of a
// few milliseconds; a retry storm would cost far more.
func TestOutageThenRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("about 20 s: a 10 s sink outage under 200 events a second")
	}
	sink := &fakeHTTPSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	p := startRouter(t, t.TempDir(), auditConfig("pause_probe: 3s"), auditEnv(t, srv.URL))

	const n, rate = 1000, 200
	healthy, outage := signEvents(t, n, "healthy", "healthy"), signEvents(t, n, "outage", "outage")
	send := func(events []signedEvent, start time.Time) time.Duration {
		lat := latencies(t, postEvents(t, p.ingest+"/hooks/salesiq", events, 16, func(i int) time.Time {
			return start.Add(time.Duration(i) * time.Second / rate)
		})) // every one 202
		return lat[len(lat)*99/100]
	}
	baseP99 := send(healthy, time.Now())
	eventually(t, 30*time.Second, "the healthy run delivered", func() bool {
		keys, _ := sink.received()
		return len(keys) >= n
	})
	sink.setDown(true)
	start := time.Now()
	outageP99 := send(outage, start)
	if limit := baseP99*6/5 + 10*time.Millisecond; outageP99 > limit {
		t.Errorf("ingest p99 %v during the outage, over %v (1.2× the healthy %v, plus 10 ms)", outageP99, limit, baseP99)
	}

	time.Sleep(time.Until(start.Add(10 * time.Second)))
	if keys, _ := sink.received(); len(keys) != n {
		t.Fatalf("%d deliveries accepted by a sink that is down", len(keys)-n)
	}
	dead := p.query(`SELECT count(*) FROM deliveries WHERE status = 'dead'`)
	maxAttempts := p.query(`SELECT COALESCE(MAX(attempts), 0) FROM deliveries`)
	paused := p.query(`SELECT count(*) FROM sink_state WHERE sink = 'audit' AND paused = 1`)
	sink.setDown(false)
	recovered := time.Now()

	eventually(t, 120*time.Second, "every event delivered after the recovery", func() bool {
		keys, _ := sink.received()
		return len(keys) >= 2*n
	})
	drained := time.Since(recovered)
	eventually(t, 10*time.Second, "nothing pending", func() bool {
		return p.query(`SELECT count(*) FROM deliveries WHERE status <> 'delivered'`) == 0
	})
	time.Sleep(200 * time.Millisecond) // room for a repeat to show
	keys, _ := sink.received()
	keys = keys[n:] // the healthy run's
	distinct := map[string]bool{}
	for _, k := range keys {
		distinct[k] = true
	}
	t.Logf("outage: ingest p99 %v (healthy sink %v), paused %v, at most %d attempts per delivery, %d dead; after the recovery all %d delivered in %v (%d requests, %d keys)",
		outageP99.Round(10*time.Microsecond), baseP99.Round(10*time.Microsecond), paused == 1, maxAttempts, dead, n, drained.Round(time.Millisecond), len(keys), len(distinct))
	if dead != 0 {
		t.Errorf("%d deliveries dead after a 10 s outage, want none", dead)
	}
	if maxAttempts > 5 {
		t.Errorf("a delivery spent %d attempts during the outage, want at most 5", maxAttempts)
	}
	if paused != 1 {
		t.Errorf("the sink was not paused during the outage")
	}
	if len(keys) != n || len(distinct) != n {
		t.Errorf("%d requests under %d idempotency keys for %d events, want exactly one each", len(keys), len(distinct), n)
	}
}
