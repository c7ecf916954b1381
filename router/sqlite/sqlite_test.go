package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/storetest"
)

func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) router.Store {
		return openTest(t, filepath.Join(t.TempDir(), "hookroute.db"))
	})
}

func pragma[T any](t *testing.T, db *sql.DB, name string) T {
	t.Helper()
	var v T
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestPragmas(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "p.db"))
	defer s.Close()
	if got := pragma[string](t, s.w, "journal_mode"); got != "wal" {
		t.Errorf("writer journal_mode = %q, want wal", got)
	}
	for name, want := range map[string]int{"synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000} {
		if got := pragma[int](t, s.w, name); got != want {
			t.Errorf("writer %s = %d, want %d", name, got, want)
		}
	}
	if got := pragma[string](t, s.r, "journal_mode"); got != "wal" {
		t.Errorf("reader journal_mode = %q, want wal", got)
	}
	if got := pragma[int](t, s.r, "query_only"); got != 1 {
		t.Errorf("reader query_only = %d, want 1", got)
	}
	if _, err := s.r.Exec("DELETE FROM events"); err == nil {
		t.Errorf("a write through the read pool succeeded")
	}
}

func TestOpenRefusesWithoutWAL(t *testing.T) {
	// An in-memory database cannot use WAL; SQLite keeps "memory" quietly.
	s, err := Open(context.Background(), ":memory:", Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open(:memory:) succeeded, want a journal_mode error")
	}
	if !strings.Contains(err.Error(), "journal_mode") {
		t.Errorf("Open(:memory:) error = %v, want it to name journal_mode", err)
	}
}

func TestOpenOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	s := openTest(t, path)
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at the path given: %v", err)
	}
	s = openTest(t, path)
	defer s.Close()
	var n int
	ms, _ := migrations()
	if err := s.r.QueryRow("SELECT COUNT(*) FROM schema_version").Scan(&n); err != nil || n != len(ms) {
		t.Errorf("schema_version rows = %d, %v; want %d", n, err, len(ms))
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	s := openTest(t, path)
	ev := &router.EventRecord{Source: "s", ID: "e1", Name: "n", ReceivedAt: at, Body: []byte("body")}
	if _, err := s.Ingest(ctx, ev, []router.NewDelivery{{ID: "d1", Rule: "r", Sink: "k", NextAttemptAt: at}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "k", "w", at, time.Minute, 1); err != nil {
		t.Fatal(err)
	}
	err := s.Finish(ctx, "d1", "w", router.Finish{
		Attempt: router.AttemptRecord{At: at, Outcome: router.OutcomeRetry, Error: "boom"},
		Status:  router.StatusPending, NextAttemptAt: at.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Ingest(ctx, ev, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Ingest after Close: error = %v, want ErrClosed", err)
	}

	s = openTest(t, path)
	defer s.Close()
	got, err := s.GetEvent(ctx, "s", "e1")
	if err != nil || string(got.Body) != "body" {
		t.Fatalf("GetEvent after reopen = %+v, %v", got, err)
	}
	d, err := s.GetDelivery(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Attempts != 1 || d.LastError != "boom" || len(d.AttemptLog) != 1 || !d.NextAttemptAt.Equal(at.Add(time.Hour)) {
		t.Errorf("delivery after reopen = %+v", d)
	}
	var versions int
	if err := s.r.QueryRow("SELECT COUNT(*) FROM schema_version").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if ms, _ := migrations(); versions != len(ms) {
		t.Errorf("schema_version has %d rows, want %d (migrations applied once)", versions, len(ms))
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.db")
	s := openTest(t, path)
	if _, err := s.w.Exec("INSERT INTO schema_version (version, applied_at) VALUES (999, 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(context.Background(), path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error = %v, want it to say the schema is newer", err)
	}
}

func TestMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
}

// ingestReq builds a queued ingest request for the committer tests.
func ingestReq(t *testing.T, ctx context.Context, id string, deliveryIDs ...string) *writeReq {
	t.Helper()
	var ds []router.NewDelivery
	for _, d := range deliveryIDs {
		ds = append(ds, router.NewDelivery{ID: d, Rule: "r", Sink: "k"})
	}
	op, err := newIngestOp(&router.EventRecord{Source: "s", ID: id, Name: "n", ReceivedAt: time.Unix(1, 0)}, ds)
	if err != nil {
		t.Fatal(err)
	}
	return &writeReq{ctx: ctx, ingest: op, done: make(chan error, 1)}
}

// TestCommitBatch drives one batch by hand: skipped requests, a duplicate
// inside the batch, and a request that fails alone.
func TestCommitBatch(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "c.db"))
	defer s.Close()

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	ok1 := ingestReq(t, ctx, "e1", "d1")
	gone := ingestReq(t, cancelled, "e2", "d2")
	abandoned := ingestReq(t, ctx, "e3", "d3")
	abandoned.state.Store(reqAbandoned)
	dup := ingestReq(t, ctx, "e1", "d4")
	bad := ingestReq(t, ctx, "e5", "d5", "d1") // d1 is taken by ok1
	ok2 := ingestReq(t, ctx, "e6", "d6")

	before := s.Stats()
	s.commit([]*writeReq{ok1, gone, abandoned, dup, bad, ok2})

	if err := <-ok1.done; err != nil || ok1.dup {
		t.Errorf("ok1 = %v, %v", ok1.dup, err)
	}
	if err := <-gone.done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v, want context.Canceled", err)
	}
	select {
	case err := <-abandoned.done:
		t.Errorf("abandoned request was answered: %v", err)
	default:
	}
	if err := <-dup.done; err != nil || !dup.dup {
		t.Errorf("duplicate in batch = %v, %v; want duplicate", dup.dup, err)
	}
	if err := <-bad.done; err == nil || !strings.Contains(err.Error(), "d1") {
		t.Errorf("request reusing a delivery id: %v, want an error naming d1", err)
	}
	if err := <-ok2.done; err != nil || ok2.dup {
		t.Errorf("ok2 = %v, %v", ok2.dup, err)
	}

	for id, want := range map[string]bool{"e1": true, "e2": false, "e3": false, "e5": false, "e6": true} {
		_, err := s.GetEvent(ctx, "s", id)
		if got := err == nil; got != want {
			t.Errorf("event %s stored = %v (%v), want %v", id, got, err, want)
		}
	}
	for id, want := range map[string]bool{"d1": true, "d4": false, "d5": false, "d6": true} {
		_, err := s.GetDelivery(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("delivery %s stored = %v (%v), want %v", id, got, err, want)
		}
	}
	st := s.Stats()
	if d := st.Batches - before.Batches; d != 1 {
		t.Errorf("batches +%d, want +1", d)
	}
	if d := st.Writes - before.Writes; d != 4 {
		t.Errorf("writes +%d, want +4", d)
	}
	if d := st.Events - before.Events; d != 2 {
		t.Errorf("events +%d, want +2", d)
	}
	if d := st.Duplicates - before.Duplicates; d != 1 {
		t.Errorf("duplicates +%d, want +1", d)
	}
	if d := st.Failed - before.Failed; d != 2 {
		t.Errorf("failed +%d, want +2", d)
	}
}

// TestCommitBatchBodyHash: two requests with one body hash in a batch
// store one event, also when the batch is run again without a request
// that failed after writing its event with that hash.
func TestCommitBatchBodyHash(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "h.db"))
	defer s.Close()
	withHash := func(r *writeReq, body string) *writeReq {
		h := sha256.Sum256([]byte(body))
		r.ingest.bodyHash = h[:]
		return r
	}
	first := withHash(ingestReq(t, ctx, "e1", "d1"), "one")
	replay := withHash(ingestReq(t, ctx, "e2", "d2"), "one")
	// bad writes its event, with hash "two", then fails on d1: the batch
	// is rolled back and run again without it, and its hash must not
	// survive into the second run.
	bad := withHash(ingestReq(t, ctx, "e3", "d3", "d1"), "two")
	second := withHash(ingestReq(t, ctx, "e4", "d4"), "two")
	again := withHash(ingestReq(t, ctx, "e5", "d5"), "two")
	s.commit([]*writeReq{first, replay, bad, second, again})

	for _, c := range []struct {
		name     string
		r        *writeReq
		dup      bool
		storedID string
	}{{"first", first, false, ""}, {"replay", replay, true, "e1"}, {"second", second, false, ""}, {"again", again, true, "e4"}} {
		if err := <-c.r.done; err != nil || c.r.dup != c.dup || c.r.storedID != c.storedID {
			t.Errorf("%s = duplicate %v of %q, %v; want %v, %q", c.name, c.r.dup, c.r.storedID, err, c.dup, c.storedID)
		}
	}
	if err := <-bad.done; err == nil {
		t.Errorf("bad request: no error, want one naming d1")
	}
	for id, want := range map[string]bool{"e1": true, "e2": false, "e3": false, "e4": true, "e5": false} {
		if _, err := s.GetEvent(ctx, "s", id); (err == nil) != want {
			t.Errorf("event %s stored = %v, want %v", id, err == nil, want)
		}
	}
	for id, want := range map[string]bool{"d1": true, "d2": false, "d3": false, "d4": true, "d5": false} {
		if _, err := s.GetDelivery(ctx, id); (err == nil) != want {
			t.Errorf("delivery %s stored = %v, want %v", id, err == nil, want)
		}
	}
}

// TestCommitFailureFailsEveryone: when the transaction cannot commit, no
// caller in the batch is told it succeeded.
func TestCommitFailureFailsEveryone(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "f.db"))
	defer s.Close()
	// A deferred foreign key is checked only at COMMIT, so the trigger makes
	// the whole transaction fail there, after every statement in it has
	// succeeded.
	if _, err := s.w.Exec(`CREATE TABLE parent (id TEXT PRIMARY KEY);
		CREATE TABLE poison (x TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
		CREATE TRIGGER poison AFTER INSERT ON events WHEN NEW.id = 'poison'
		BEGIN INSERT INTO poison VALUES ('nothing'); END`); err != nil {
		t.Fatal(err)
	}
	reqs := []*writeReq{ingestReq(t, ctx, "a", "da"), ingestReq(t, ctx, "poison"), ingestReq(t, ctx, "b", "db")}
	s.commit(reqs)
	for i, r := range reqs {
		if err := <-r.done; err == nil || !strings.Contains(err.Error(), "group commit") {
			t.Errorf("request %d: %v, want the group commit error", i, err)
		}
	}
	for _, id := range []string{"a", "poison", "b"} {
		if _, err := s.GetEvent(ctx, "s", id); !errors.Is(err, router.ErrNotFound) {
			t.Errorf("event %s: %v, want ErrNotFound", id, err)
		}
	}
	// The writer is usable again.
	if _, err := s.Ingest(ctx, &router.EventRecord{Source: "s", ID: "c"}, nil); err != nil {
		t.Errorf("Ingest after a failed batch: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIngestContext: a caller that gives up while queued writes nothing; one
// whose batch has started waits and learns the outcome.
func TestIngestContext(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "x.db"))
	defer s.Close()

	// Hold the only writer connection so that the committer blocks in
	// BEGIN with a started batch.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctxA, cancelA := context.WithCancel(ctx)
	a := ingestReq(t, ctxA, "a", "da")
	errA := make(chan error, 1)
	go func() { errA <- s.submit(ctxA, a) }()
	waitFor(t, "a's batch to start", func() bool { return a.state.Load() == reqStarted })

	ctxB, cancelB := context.WithCancel(ctx)
	b := ingestReq(t, ctxB, "b", "db")
	errB := make(chan error, 1)
	go func() { errB <- s.submit(ctxB, b) }()
	waitFor(t, "b to be queued", func() bool { return len(s.reqs) == 1 })

	cancelB()
	if err := <-errB; !errors.Is(err, context.Canceled) {
		t.Errorf("queued request: %v, want context.Canceled", err)
	}
	cancelA()
	select {
	case err := <-errA:
		t.Fatalf("started request returned before its batch ended: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	conn.Close()
	if err := <-errA; err != nil {
		t.Errorf("started request: %v, want nil (it committed)", err)
	}
	if _, err := s.GetEvent(ctx, "s", "a"); err != nil {
		t.Errorf("event a: %v", err)
	}
	// b's request is still in the queue until the next batch skips it.
	waitFor(t, "the queue to drain", func() bool { return len(s.reqs) == 0 })
	if _, err := s.Ingest(ctx, &router.EventRecord{Source: "s", ID: "c"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, "s", "b"); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("event b: %v, want ErrNotFound", err)
	}
}

// TestCloseDrains: Close racing with ingests acknowledges nothing it did not
// commit.
func TestCloseDrains(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	s := openTest(t, path)

	var (
		wg    sync.WaitGroup
		acked sync.Map
		n     atomic.Int64
		start = make(chan struct{})
	)
	for g := range 16 {
		wg.Go(func() {
			<-start
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				_, err := s.Ingest(ctx, &router.EventRecord{Source: "s", ID: id},
					[]router.NewDelivery{{ID: id, Sink: "k"}})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Ingest: %v", err)
					return
				}
				acked.Store(id, true)
				n.Add(1)
			}
		})
	}
	close(start)
	waitFor(t, "some ingests", func() bool { return n.Load() >= 100 })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	s = openTest(t, path)
	defer s.Close()
	acked.Range(func(k, _ any) bool {
		if _, err := s.GetDelivery(ctx, k.(string)); err != nil {
			t.Errorf("acknowledged %s: %v", k, err)
		}
		return true
	})
}

// TestQueryPlans guards the indexes: the queue queries must read the
// partial index of pending rows, never scan the delivered ones, and the
// operator's listings and the retention steps must read an index in their
// order rather than scan a table.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"))
	defer s.Close()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cursor := &router.Cursor{At: at, Source: "s", ID: "d"}
	type plan struct {
		name, query string
		args        []any
		want        []string // indexes the plan must name
		scan        bool     // a full scan of a table is expected
	}
	list := func(name string, f router.DeliveryFilter, want ...string) plan {
		q, args, ok := listDeliveriesQuery(f)
		if !ok {
			t.Fatalf("%s: no query for %+v", name, f)
		}
		return plan{name: name, query: q, args: args, want: want}
	}
	events := func(name string, f router.EventFilter, want ...string) plan {
		q, args := listEventsQuery(f)
		return plan{name: name, query: q, args: args, want: want}
	}
	for _, tc := range []plan{
		{name: "claim", query: sqlClaim, args: []any{"o", 1, "k", 1, 10}, want: []string{"deliveries_due"}},
		{name: "next due", query: sqlNextDue, args: []any{"k"}, want: []string{"deliveries_due"}},
		{name: "pending counts", query: sqlPendingCounts, args: []any{1}, want: []string{"deliveries_due", "deliveries_dead_sink"}},
		list("dead letters", router.DeliveryFilter{Status: router.StatusDead}, "deliveries_dead"),
		list("dead letters of a sink", router.DeliveryFilter{Status: router.StatusDead, Sink: "k", After: cursor}, "deliveries_dead_sink"),
		list("by event", router.DeliveryFilter{Source: "s", EventID: "e"}, "deliveries_event"),
		list("log", router.DeliveryFilter{}, "deliveries_created"),
		list("log page", router.DeliveryFilter{After: cursor}, "deliveries_created"),
		list("log window", router.DeliveryFilter{Since: at, Until: at.Add(time.Hour), After: cursor}, "deliveries_created"),
		list("log of a sink", router.DeliveryFilter{Sink: "k", Rule: "r", After: cursor}, "deliveries_created"),
		events("events", router.EventFilter{}, "events_received_at"),
		events("events page", router.EventFilter{Source: "s", Name: "n", After: cursor}, "events_received_at"),
		events("events window", router.EventFilter{Since: at, Until: at.Add(time.Hour), After: cursor}, "events_received_at"),
		{name: "prune deliveries", query: sqlPruneDeliveries, args: []any{1, 10}, want: []string{"deliveries_created"}},
		{name: "prune events", query: sqlPruneEvents, args: []any{1, 10}, want: []string{"events_received_at", "deliveries_event"}},
		{name: "prune keys", query: sqlPruneKeys, args: []any{1, 10}, scan: true},
		{name: "replay", query: sqlReplay, args: []any{1, "by", "d"}, want: []string{"sqlite_autoindex_deliveries_1"}},
	} {
		rows, err := s.r.Query("EXPLAIN QUERY PLAN "+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		t.Logf("%s: %s", tc.name, p)
		for _, w := range tc.want {
			if !strings.Contains(p, w) {
				t.Errorf("%s: plan = %s, want it to use %s", tc.name, p, w)
			}
		}
		for _, step := range plan {
			// "SCAN t" alone is a full scan; "SCAN t USING INDEX i" reads
			// an index in order.
			if strings.HasPrefix(step, "SCAN ") && !strings.Contains(step, " USING ") && !tc.scan {
				t.Errorf("%s: plan = %s, want no full scan", tc.name, p)
			}
		}
	}
}

// body is a typical SalesIQ webhook body, about 1.5 KB.
var body = []byte(`{"event":"conversation.rated","data":{"rating":"happy","feedback":"` +
	strings.Repeat("x", 1400) + `"}}`)

// rawBody is as large, but does not compress: it is stored as it is, so
// that the disk-full tests fill their pages as they count on.
var rawBody = func() []byte {
	b := make([]byte, 1500)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}()

// BenchmarkIngestParallel measures durable ingest throughput through group
// commit, with closed-loop callers (each waits for its commit before sending
// the next), 2 deliveries per event. p is goroutines per CPU.
func BenchmarkIngestParallel(b *testing.B) {
	for _, p := range []int{1, 16} {
		b.Run(fmt.Sprintf("p=%d", p), func(b *testing.B) {
			s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
			defer s.Close()
			ctx := context.Background()
			var seq atomic.Int64
			at := time.Now()
			before := s.Stats()
			b.SetParallelism(p)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprint(seq.Add(1))
					ev := &router.EventRecord{
						Source: "salesiq", ID: id, Name: "conversation.rated", ReceivedAt: at,
						Headers: map[string]string{"content-type": "application/json"},
						Body:    body, Matched: []string{"rated", "unhappy"},
					}
					ds := []router.NewDelivery{
						{ID: id + "-1", Rule: "rated", Sink: "slack", NextAttemptAt: at},
						{ID: id + "-2", Rule: "unhappy", Route: 1, Sink: "zendesk", NextAttemptAt: at},
					}
					if _, err := s.Ingest(ctx, ev, ds); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if n := st.Batches - before.Batches; n > 0 {
				b.ReportMetric(float64(st.Writes-before.Writes)/float64(n), "avg_batch")
			}
		})
	}
}

// BenchmarkClaimFinish measures the delivery side: claim in small batches,
// finish each delivery; Finish shares group commits with other finishes.
// With one delivery per event each claim reads eight events, as under a
// backlog of one-rule events; with 500 the event reads all but vanish.
func BenchmarkClaimFinish(b *testing.B) {
	for _, perEvent := range []int{1, 500} {
		b.Run(fmt.Sprintf("per_event=%d", perEvent), func(b *testing.B) { benchClaimFinish(b, perEvent) })
	}
}

func benchClaimFinish(b *testing.B, perEvent int) {
	const perClaim, parallelism = 8, 8
	s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
	defer s.Close()
	ctx := context.Background()
	at := time.Unix(1_900_000_000, 0)
	// Leftovers in each goroutine's hand must not starve the others.
	rows := b.N + perClaim*parallelism*64
	for e := 0; e*perEvent < rows; e++ {
		var ds []router.NewDelivery
		for i := range perEvent {
			ds = append(ds, router.NewDelivery{ID: fmt.Sprintf("%d-%d", e, i), Rule: "r", Sink: "k", NextAttemptAt: at})
		}
		if _, err := s.Ingest(ctx, &router.EventRecord{Source: "s", ID: fmt.Sprint(e), Body: body}, ds); err != nil {
			b.Fatal(err)
		}
	}
	var owners atomic.Int64
	before := s.Stats()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		owner := fmt.Sprint("w", owners.Add(1))
		var hand []*router.Claimed
		for pb.Next() {
			if len(hand) == 0 {
				var err error
				hand, err = s.Claim(ctx, "k", owner, at, time.Minute, perClaim)
				if err != nil || len(hand) == 0 {
					b.Errorf("Claim = %d, %v", len(hand), err)
					return
				}
			}
			c := hand[0]
			hand = hand[1:]
			err := s.Finish(ctx, c.ID, owner, router.Finish{
				Attempt: router.AttemptRecord{At: at, Duration: time.Millisecond, Outcome: router.OutcomeDelivered, StatusCode: 200},
				Status:  router.StatusDelivered,
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "finishes/s")
	if n := st.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(st.Writes-before.Writes)/float64(n), "avg_batch")
	}
}

// TestUpgradeKeepsDeliveries opens a file written at schema version 2,
// with a delivery in it: the operations step must leave it readable, never
// replayed and not leased, and replayable.
func TestUpgradeKeepsDeliveries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.db")
	ms, err := migrations()
	if err != nil || len(ms) < 3 {
		t.Fatalf("migrations = %d, %v", len(ms), err)
	}
	db, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		ms[0].SQL, ms[1].SQL,
		`INSERT INTO schema_version VALUES (1, 0), (2, 0)`,
		`INSERT INTO events (source, id, name, received_at, headers, body, matched)
			VALUES ('s', 'e1', 'n', 1000, '{}', x'', '[]')`,
		`INSERT INTO deliveries (id, source, event_id, rule, route, sink, status, attempts,
			next_attempt_at, created_at, updated_at, last_error)
			VALUES ('d1', 's', 'e1', 'r', 0, 'k', 'dead', 3, 1000, 1000, 2000, 'boom')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := openTest(t, path)
	defer s.Close()
	storetest.UpgradedDeadDelivery(t, s, "d1")
}

// TestPruneReleasedKey: a dedup key released (so unlocked) and unused since
// the cut-off goes; ReleaseKey stamps the wall clock, so the suite cannot
// make one old.
func TestPruneReleasedKey(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "k.db"))
	defer s.Close()
	storetest.PruneReleasedKey(t, s, func(key string, at time.Time) error {
		_, err := s.w.Exec(`UPDATE remote_objects SET updated_at = ? WHERE dedup_key = ?`, unixNano(at), key)
		return err
	})
}

// TestRelaxedBookkeeping: claims and finishes commit without an fsync,
// ingests never do, the writer connection is back at synchronous=FULL after
// every relaxed batch, and relaxed commits are made durable within the
// window even when nothing else is written.
func TestRelaxedBookkeeping(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "r.db"))
	defer s.Close()
	t0 := time.Unix(100, 0)
	ingest := func(id string) {
		t.Helper()
		rec := &router.EventRecord{Source: "s", ID: id, Name: "n", ReceivedAt: t0}
		if _, err := s.Ingest(ctx, rec, []router.NewDelivery{{ID: "d-" + id, Rule: "r", Sink: "k", NextAttemptAt: t0}}); err != nil {
			t.Fatal(err)
		}
	}

	before := s.Stats()
	ingest("e1")
	if st := s.Stats(); st.Relaxed != before.Relaxed {
		t.Fatalf("an ingest committed relaxed")
	}
	before = s.Stats()
	cs, err := s.Claim(ctx, "k", "w", t0, time.Minute, 1)
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim: %v, %v", cs, err)
	}
	if st := s.Stats(); st.Relaxed != before.Relaxed+1 {
		t.Errorf("a claim-only batch was not relaxed: relaxed %d → %d", before.Relaxed, st.Relaxed)
	}
	if got := pragma[int](t, s.w, "synchronous"); got != 2 {
		t.Errorf("writer synchronous = %d after a relaxed batch, want 2 (FULL)", got)
	}
	// An ingest right after, inside the window, still syncs.
	before = s.Stats()
	ingest("e2")
	if st := s.Stats(); st.Relaxed != before.Relaxed {
		t.Errorf("an ingest inside the unsynced window committed relaxed")
	}

	// Nothing else comes: the marker commit syncs within the window.
	before = s.Stats()
	if err := s.Finish(ctx, "d-e1", "w", router.Finish{Status: router.StatusDelivered,
		Attempt: router.AttemptRecord{At: t0, Outcome: router.OutcomeDelivered}}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Relaxed != before.Relaxed+1 {
		t.Errorf("a finish-only batch was not relaxed")
	}
	waitFor(t, "the marker commit", func() bool { return s.Stats().Syncs > before.Syncs })
	var at int64
	if err := s.r.QueryRow(`SELECT at FROM sync_marker WHERE id = 1`).Scan(&at); err != nil || at == 0 {
		t.Errorf("sync marker at = %d, %v; want it written", at, err)
	}
	if got := pragma[int](t, s.w, "synchronous"); got != 2 {
		t.Errorf("writer synchronous = %d, want 2 (FULL)", got)
	}

	// A stream of relaxed batches still syncs at least every window.
	before = s.Stats()
	for range 40 {
		if _, err := s.Claim(ctx, "none", "w", t0, time.Minute, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(syncWindow / 4)
	}
	st := s.Stats()
	synced := (st.Batches - before.Batches) - (st.Relaxed - before.Relaxed) + (st.Syncs - before.Syncs)
	if synced < 2 {
		t.Errorf("40 claims over %v: %d synced commits, want one per %v at least", 10*syncWindow, synced, syncWindow)
	}
}

// TestFillWaitsForOutcomesOnly: a batch of outcomes waits for more
// outcomes, but anything else (an ingest, a claim) ends the wait at once,
// and the wait is bounded.
func TestFillWaitsForOutcomesOnly(t *testing.T) {
	outcome := func() *writeReq { return &writeReq{finish: &finishOp{}} }
	newStore := func(wait time.Duration) *Store {
		return &Store{reqs: make(chan *writeReq, 16), quit: make(chan struct{}), maxBatch: 256, fillWait: wait}
	}

	if !outcomesOnly([]*writeReq{outcome(), outcome()}) || outcomesOnly([]*writeReq{outcome(), {claim: &claimOp{}}}) ||
		outcomesOnly([]*writeReq{{ingest: &ingestOp{}}}) {
		t.Error("outcomesOnly: want true for outcomes alone, false otherwise")
	}

	// An outcome that comes later joins the batch.
	s := newStore(time.Minute)
	q := s.reqs
	go func() {
		time.Sleep(20 * time.Millisecond)
		q <- outcome()
		time.Sleep(20 * time.Millisecond)
		q <- &writeReq{ingest: &ingestOp{}} // ends the wait
	}()
	start := time.Now()
	got := s.fill([]*writeReq{outcome()})
	if len(got) != 3 || got[2].ingest == nil {
		t.Errorf("fill gathered %d requests, want outcome, outcome, ingest", len(got))
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("an ingest did not end the wait (%v)", d)
	}

	// A claim ends it too.
	s = newStore(time.Minute)
	q = s.reqs
	go func() { q <- &writeReq{claim: &claimOp{}} }()
	if got := s.fill([]*writeReq{outcome()}); len(got) != 2 {
		t.Errorf("fill with a claim: %d requests, want 2", len(got))
	}

	// Nothing comes: the wait ends after fillWait.
	s = newStore(30 * time.Millisecond)
	start = time.Now()
	if got := s.fill([]*writeReq{outcome()}); len(got) != 1 {
		t.Errorf("fill alone: %d requests, want 1", len(got))
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > 10*time.Second {
		t.Errorf("fill alone waited %v, want about 30ms", d)
	}

	// Close ends it.
	s = newStore(time.Minute)
	close(s.quit)
	if got := s.fill([]*writeReq{outcome()}); len(got) != 1 {
		t.Errorf("fill after Close: %d requests, want 1", len(got))
	}
}

// TestDiskFullAcknowledgesNothingUnstored is docs/reliability.md's D-04 at the
// store: with the file unable to grow (max_page_count, as a full disk), the
// ingests that cannot be stored fail, each either stored whole with its
// deliveries or not at all, and the store takes writes again once there is
// room.
func TestDiskFullAcknowledgesNothingUnstored(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "full.db"))
	defer s.Close()
	ingest := func(id string) error {
		ds := []router.NewDelivery{{ID: "d1-" + id, Rule: "r", Sink: "k"}, {ID: "d2-" + id, Rule: "r", Sink: "k2"}}
		_, err := s.Ingest(ctx, &router.EventRecord{Source: "s", ID: id, Body: rawBody}, ds)
		return err
	}
	if err := ingest("before"); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.w.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// The writer is the store's one connection, where the limit applies.
	if _, err := s.w.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+30)); err != nil {
		t.Fatal(err)
	}
	// Waves of ten at once: batches of several, until the file is full.
	const n, wave = 200, 10
	errs := make([]error, n)
	for w := 0; w < n; w += wave {
		var wg sync.WaitGroup
		for i := w; i < w+wave; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = ingest(fmt.Sprint("e", i)) }()
		}
		wg.Wait()
	}
	failed := 0
	for i, err := range errs {
		id := fmt.Sprint("e", i)
		_, gerr := s.GetEvent(ctx, "s", id)
		var ds int
		if err := s.w.QueryRow(`SELECT count(*) FROM deliveries WHERE source = 's' AND event_id = ?`, id).Scan(&ds); err != nil {
			t.Fatal(err)
		}
		switch {
		case err == nil && (gerr != nil || ds != 2):
			t.Errorf("event %s acknowledged but stored as %v with %d deliveries", id, gerr, ds)
		case err != nil && (!errors.Is(gerr, router.ErrNotFound) || ds != 0):
			t.Errorf("event %s failed (%v) but left %v and %d deliveries", id, err, gerr, ds)
		case err != nil:
			failed++
			if !strings.Contains(err.Error(), "full") {
				t.Errorf("event %s: %v, want the disk-full error", id, err)
			}
		}
	}
	if failed == 0 || failed == n {
		t.Fatalf("%d of %d ingests failed: want some stored before the file was full, and the rest refused", failed, n)
	}
	t.Logf("%d of %d ingests failed with the file full", failed, n)

	if _, err := s.w.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if err := ingest("after"); err != nil {
		t.Errorf("ingest once there is room again: %v", err)
	}
}

// countLines is a slog.Handler that counts the lines written per message.
type countLines struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *countLines) Enabled(context.Context, slog.Level) bool { return true }
func (h *countLines) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countLines) WithGroup(string) slog.Handler            { return h }

func (h *countLines) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Message]++
	return nil
}

// TestCommitFailuresAreRateLimited: on a full file every group commit
// fails, and the committer's line about it is limited like the router's
// repeated failures (10, then one a second), instead of one per batch.
func TestCommitFailuresAreRateLimited(t *testing.T) {
	ctx := context.Background()
	lines := &countLines{n: map[string]int{}}
	s, err := Open(ctx, filepath.Join(t.TempDir(), "flood.db"), Options{Logger: slog.New(lines)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pages int
	if err := s.w.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	// One at a time: every ingest is a batch of its own, so each failure
	// is a failed commit.
	const n = 500
	start := time.Now()
	failed := 0
	for i := range n {
		ds := []router.NewDelivery{{ID: fmt.Sprint("d", i), Rule: "r", Sink: "k"}}
		if _, err := s.Ingest(ctx, &router.EventRecord{Source: "s", ID: fmt.Sprint("e", i), Body: rawBody}, ds); err != nil {
			failed++
		}
	}
	elapsed := time.Since(start)
	lines.mu.Lock()
	got := lines.n["sqlite: group commit failed"]
	lines.mu.Unlock()
	if failed < n-10 {
		t.Fatalf("%d of %d ingests failed on a full file, want all but the few that fit in its free pages", failed, n)
	}
	// 10 at once, then one a second.
	if most := 10 + int(elapsed/time.Second) + 1; got > most {
		t.Errorf("%d failed commits in %v logged %d lines, want at most %d", failed, elapsed.Round(time.Millisecond), got, most)
	}
	t.Logf("%d failed commits in %v: %d lines", failed, elapsed.Round(time.Millisecond), got)
}

// TestProbeWriteFailsWhereWritesFail: the readiness probe really writes.
// Its row is there after it, and a file that takes no writes fails it
// (and ingests) while pings still pass.
func TestProbeWriteFailsWhereWritesFail(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "probe.db"))
	defer s.Close()
	if err := s.ProbeWrite(ctx); err != nil {
		t.Fatalf("ProbeWrite: %v", err)
	}
	var at int64
	if err := s.r.QueryRow(`SELECT at FROM ready_probe WHERE id = 1`).Scan(&at); err != nil || time.Since(time.Unix(0, at)) > time.Minute {
		t.Fatalf("ready_probe after ProbeWrite: %d, %v", at, err)
	}
	// The writer is the store's one connection: query_only there refuses
	// every write, as a full disk would.
	if _, err := s.w.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.ProbeWrite(ctx); err == nil {
		t.Fatal("ProbeWrite succeeded on a store that takes no writes")
	}
	if _, err := s.Ingest(ctx, &router.EventRecord{Source: "s", ID: "e"}, nil); err == nil {
		t.Fatal("Ingest succeeded on a store that takes no writes")
	}
	if _, err := s.w.Exec(`PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	if err := s.ProbeWrite(ctx); err != nil {
		t.Fatalf("ProbeWrite once writes are taken again: %v", err)
	}
}

// TestStatusCheckWidened: migration 0012 edits the deliveries table's
// CHECK in place; the file stays sound, every connection sees the new
// check (a write of suppressed succeeds, a made-up status still fails),
// and a reopen keeps it.
func TestStatusCheckWidened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	for range 2 {
		s := openTest(t, path)
		var ok string
		if err := s.r.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("integrity_check = %q, %v", ok, err)
		}
		if _, err := s.w.Exec(`INSERT INTO events (source, id, name, received_at, headers, body, matched) VALUES ('s', 'e', 'n', 1, '{}', x'', '[]')
			ON CONFLICT DO NOTHING`); err != nil {
			t.Fatal(err)
		}
		for status, want := range map[string]bool{"suppressed": true, "silenced": true, "bogus": false} {
			_, err := s.w.Exec(`INSERT INTO deliveries (id, source, event_id, rule, route, sink, status, next_attempt_at, created_at, updated_at)
				VALUES (?1, 's', 'e', 'r', 0, 'k', ?1, 1, 1, 1) ON CONFLICT (id) DO NOTHING`, status)
			if (err == nil) != want {
				t.Errorf("a delivery %s: %v; want accepted %v", status, err, want)
			}
		}
		s.Close()
	}
}
