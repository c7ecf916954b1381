package e2e

import (
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdownUnderLoad is docs/reliability.md's D-03 at its PR size:
// SIGTERM while 200 signed events a second stream in and deliveries are in
// flight. The router stops accepting, finishes the requests and attempts
// it has, records their outcomes and exits 0 well inside its grace period;
// the senders, retrying as SalesIQ does, reach the restarted router. Then
// every event is acknowledged and delivered exactly once: a graceful stop,
// unlike a crash, leaves nothing to send twice.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("about 8 s: a stream of events through a SIGTERM and a restart")
	}
	sink := &slowSink{delay: 20 * time.Millisecond}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	config := auditConfig("concurrency: 4")
	env := auditEnv(t, srv.URL)
	dir := t.TempDir()
	var cur atomic.Pointer[routerProc]
	cur.Store(startRouter(t, dir, config, env))

	const n = 1000 // 200 a second for 5 s
	stream := streamEvents(t, n, 70000, 5*time.Millisecond, func() string { return cur.Load().ingest })
	time.Sleep(2 * time.Second)
	eventually(t, 5*time.Second, "a delivery in flight", func() bool { return sink.inflight.Load() > 0 })

	p := cur.Load()
	inflight := sink.inflight.Load()
	stopped := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
		p.done <- err // for startRouter's cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	took := time.Since(stopped)
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0", err)
	}
	// The grace period (server.shutdown_timeout) is 10 s; a stop that ran
	// into it would leave attempts to their leases.
	if took > 5*time.Second || strings.Contains(p.logs.String(), "grace period over") {
		t.Errorf("shutdown took %v (grace period over: %v), want well inside the 10 s grace period",
			took, strings.Contains(p.logs.String(), "grace period over"))
	}
	acceptedBefore := p.query(`SELECT count(*) FROM events`)
	time.Sleep(300 * time.Millisecond)
	cur.Store(startRouter(t, dir, config, env))

	acked, failed := stream.wait()
	if failed > 0 || len(acked) != n {
		t.Fatalf("%d events acknowledged, %d failed every sender attempt; want all %d acknowledged", len(acked), failed, n)
	}
	eventually(t, 30*time.Second, "every acknowledged event delivered", func() bool {
		got := map[string]bool{}
		for _, r := range sink.received() {
			got[r.event] = true
		}
		return len(got) == n
	})
	q := cur.Load()
	eventually(t, 10*time.Second, "nothing pending", func() bool {
		return q.query(`SELECT count(*) FROM deliveries WHERE status <> 'delivered'`) == 0
	})
	time.Sleep(200 * time.Millisecond) // room for a repeat to show

	reqs := sink.received()
	perEvent := map[string]int{}
	keys := map[string]bool{}
	for _, r := range reqs {
		if !acked[r.event] {
			t.Errorf("delivered event %s was never acknowledged", r.event)
		}
		perEvent[r.event]++
		keys[r.key] = true
	}
	for id, c := range perEvent {
		if c != 1 {
			t.Errorf("event %s delivered %d times, want once", id, c)
		}
	}
	t.Logf("SIGTERM with %d deliveries in flight and %d events stored: exit 0 after %v; %d events, %d send attempts, %d sink requests, %d idempotency keys",
		inflight, acceptedBefore, took.Round(time.Millisecond), len(acked), stream.attempts.Load(), len(reqs), len(keys))
	if len(reqs) != n || len(keys) != n {
		t.Errorf("%d sink requests under %d idempotency keys for %d events, want exactly one each", len(reqs), len(keys), n)
	}
}
