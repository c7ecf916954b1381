package e2e

import (
	"database/sql"
	"fmt"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// TestRestartWithBigBacklogIsReadyAtOnce is docs/reliability.md's D-05 at its
// PR size: a router restarted on a file with 100,000 events, half their
// deliveries still pending, answers /readyz within 2 s of starting and
// delivers within 3 s. The queue lives on disk: nothing at start reads it
// whole.
func TestRestartWithBigBacklogIsReadyAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("about 3 s (40 s under the race detector): writes a 100,000-event database")
	}
	sink := &slowSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	config := auditConfig()
	env := auditEnv(t, srv.URL)
	dir := t.TempDir()

	// A first run creates the schema; then the backlog is written
	// straight into the file, as if a long outage had left it.
	p := startRouter(t, dir, config, env)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("first run: exit %v", err)
	}
	p.done <- nil // for startRouter's cleanup
	const n, pending = 100_000, 50_000
	writeBacklog(t, p.db, n, pending)

	started := time.Now()
	q := startRouter(t, dir, config, env)
	ready := time.Since(started)
	eventually(t, 10*time.Second, "a delivery", func() bool { return len(sink.received()) > 0 })
	first := time.Since(started)
	t.Logf("%d events, %d pending: ready after %v, first delivery after %v", n, pending, ready.Round(time.Millisecond), first.Round(time.Millisecond))
	if ready > 2*time.Second {
		t.Errorf("ready %v after start, want ≤ 2 s", ready)
	}
	if first > 3*time.Second {
		t.Errorf("first delivery %v after start, want ≤ 3 s", first)
	}
	// The oldest pending deliveries go first: the first to arrive is of
	// the first claims (a claim takes at most twice the concurrency).
	var i int
	if _, err := fmt.Sscanf(sink.received()[0].event, "conversation.rated:backlog%d:", &i); err != nil || i < n-pending || i >= n-pending+16 {
		t.Errorf("first delivered %s (%v), want one of the 16 oldest pending, backlog%d and on", sink.received()[0].event, err, n-pending)
	}
	if c := q.query(`SELECT count(*) FROM deliveries WHERE status = 'delivered'`); c <= n-pending {
		t.Errorf("%d deliveries delivered, want more than the %d written as delivered", c, n-pending)
	}
}

// writeBacklog writes n sad-rating events into the router's SQLite file at
// db, each with one delivery to the audit sink: the first n-pending
// delivered, the rest pending and due, oldest first. SQLite generates the
// rows itself: a statement per row took a minute under the race detector,
// this takes 1.5 s without it and about 40 s with it (the transpiled
// SQLite is instrumented too).
func writeBacklog(t *testing.T, db string, n, pending int) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const series = `WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?1)`
	base := time.Now().Add(-time.Hour).UnixNano() // one event a millisecond from then
	body := string(salesiqEvent("{{ENTITY}}", "1", "backlog", 1))
	if _, err := conn.Exec(series+`
		INSERT INTO events (source, id, name, received_at, headers, body, matched)
		SELECT 'salesiq', 'conversation.rated:backlog' || i || ':1567065865617', 'conversation.rated',
			?2 + i * 1000000, '{"content-type":"application/json"}',
			CAST(replace(?3, '{{ENTITY}}', 'backlog' || i) AS BLOB), '["all-sad"]'
		FROM s`, n, base, body); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(series+`
		INSERT INTO deliveries (id, source, event_id, rule, route, sink, status, attempts,
			next_attempt_at, created_at, updated_at)
		SELECT printf('d_backlog_%012d', i), 'salesiq', 'conversation.rated:backlog' || i || ':1567065865617',
			'all-sad', 0, 'audit', CASE WHEN i < ?2 THEN 'delivered' ELSE 'pending' END,
			CASE WHEN i < ?2 THEN 1 ELSE 0 END, ?3 + i * 1000000, ?3 + i * 1000000, ?3 + i * 1000000
		FROM s`, n, n-pending, base); err != nil {
		t.Fatal(err)
	}
}
