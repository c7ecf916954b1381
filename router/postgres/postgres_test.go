package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/internal/testenv"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/storetest"
)

// testURL returns the test server's address, or skips the test.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("HOOKROUTE_TEST_POSTGRES")
	testenv.Require(t, u != "", "HOOKROUTE_TEST_POSTGRES is not set: skipping PostgreSQL tests (.ci/run sets it)")
	return u
}

// randomName returns prefix followed by random hex digits.
func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// freshSchema creates an empty schema, dropped when the test ends, and
// returns the address of the test server with search_path set to it, and
// a connection outside any store for the test's own queries.
func freshSchema(t testing.TB) (string, *pgx.Conn) {
	t.Helper()
	base := testURL(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	schema := randomName("hookroute_test_")
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		t.Fatalf("create schema: %v", err)
	}
	// Registered first, so it runs last: after the stores have closed.
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("HOOKROUTE_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	if _, err := admin.Exec(ctx, "SET search_path TO "+schema); err != nil {
		t.Fatal(err)
	}
	return u.String(), admin
}

// openStore opens a store, closed when the test ends.
func openStore(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	url, _ := freshSchema(t)
	storetest.Run(t, func(t *testing.T) router.Store {
		s, err := Open(t.Context(), url, Options{MaxConns: 8})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s // storetest closes it
	})
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

// TestOpenConcurrently starts several replicas on one empty schema at once:
// the advisory lock must serialize the migrations, so that every Open
// succeeds and each step is applied once.
func TestOpenConcurrently(t *testing.T) {
	url, admin := freshSchema(t)
	const replicas = 4
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		stores = make([]*Store, replicas)
		errs   = make([]error, replicas)
	)
	for i := range replicas {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), url, Options{MaxConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		stores[i].Close()
	}
	var n, max int
	if err := admin.QueryRow(t.Context(), "SELECT COUNT(*), MAX(version) FROM schema_version").Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if ms, _ := migrations(); n != len(ms) || max != len(ms) {
		t.Errorf("schema_version: %d rows up to %d, want %d (each step applied once)", n, max, len(ms))
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	url, admin := freshSchema(t)
	openStore(t, url, Options{}).Close()
	if _, err := admin.Exec(t.Context(), "INSERT INTO schema_version (version) VALUES (999)"); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), url, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error = %v, want it to say the schema is newer", err)
	}
}

func TestOpenBadOptions(t *testing.T) {
	url := testURL(t)
	if s, err := Open(t.Context(), url, Options{Channel: strings.Repeat("c", 64)}); err == nil {
		s.Close()
		t.Error("Open with a 64-byte channel succeeded")
	}
	const secret = "hunter2-secret"
	_, err := Open(t.Context(), "postgres://u:"+secret+"@host:notaport/db", Options{})
	if err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q quotes the password", err)
	}
}

// TestIngestDeliveryIDTaken: a delivery id that exists fails the whole
// Ingest, event included, since it is one statement.
func TestIngestDeliveryIDTaken(t *testing.T) {
	url, _ := freshSchema(t)
	s := openStore(t, url, Options{MaxConns: 2})
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d := router.NewDelivery{ID: "d1", Rule: "r", Sink: "k", NextAttemptAt: at}
	if _, err := s.Ingest(t.Context(), &router.EventRecord{Source: "s", ID: "e1", ReceivedAt: at}, []router.NewDelivery{d}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(t.Context(), &router.EventRecord{Source: "s", ID: "e2", ReceivedAt: at}, []router.NewDelivery{d}); err == nil {
		t.Fatal("Ingest with a delivery id already used succeeded")
	}
	if _, err := s.GetEvent(t.Context(), "s", "e2"); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("GetEvent of the failed Ingest's event: error = %v, want ErrNotFound", err)
	}
	if _, err := s.Ingest(t.Context(), &router.EventRecord{Source: "s", ID: "e3"}, []router.NewDelivery{{ID: "", Sink: "k"}}); err == nil {
		t.Error("Ingest of a delivery without id succeeded")
	}
}

// TestZeroTimes: the zero time is stored, and read back as the zero time,
// and a zero NextAttemptAt means due at the event's ReceivedAt.
func TestZeroTimes(t *testing.T) {
	url, _ := freshSchema(t)
	s := openStore(t, url, Options{MaxConns: 2})
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Ingest(t.Context(), &router.EventRecord{Source: "s", ID: "e1", ReceivedAt: at},
		[]router.NewDelivery{{ID: "d1", Rule: "r", Sink: "k"}}); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.Claim(t.Context(), "k", "w", at, time.Minute, 1); err != nil || len(cs) != 1 {
		t.Fatalf("Claim at ReceivedAt = %d, %v; want the delivery", len(cs), err)
	}
	if err := s.Finish(t.Context(), "d1", "w", router.Finish{
		Attempt: router.AttemptRecord{Outcome: router.OutcomeDead}, Status: router.StatusDead,
	}); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDelivery(t.Context(), "d1")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.AttemptLog) != 1 || !d.AttemptLog[0].At.IsZero() || !d.NextAttemptAt.Equal(at) {
		t.Errorf("delivery = %+v, want one attempt at the zero time, next attempt at %v", d, at)
	}
	if d.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt in %v, want UTC", d.CreatedAt.Location())
	}
	if err := s.Finish(t.Context(), "d1", "w", router.Finish{Status: "bogus"}); err == nil || errors.Is(err, router.ErrLeaseLost) {
		t.Errorf("Finish with an unknown status: error = %v, want a validation error", err)
	}
}

// TestDuplicateIngestAcrossStores ingests one event from many goroutines of
// two stores (two pools, as two replicas): it must be stored once, and
// every other call must report a duplicate, not an error.
func TestDuplicateIngestAcrossStores(t *testing.T) {
	url, _ := freshSchema(t)
	stores := []*Store{openStore(t, url, Options{MaxConns: 4}), openStore(t, url, Options{MaxConns: 4})}
	const perStore = 10
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		wins  atomic.Int32
	)
	for i, s := range stores {
		for g := range perStore {
			wg.Go(func() {
				id := fmt.Sprintf("s%d-g%d", i, g)
				ev := &router.EventRecord{Source: "src", ID: "same", Name: "n", ReceivedAt: at}
				ds := []router.NewDelivery{{ID: id, Rule: "r", Sink: "k", NextAttemptAt: at}}
				<-start
				dup, err := s.Ingest(t.Context(), ev, ds)
				if err != nil {
					t.Errorf("Ingest %s: %v", id, err)
				} else if !dup {
					wins.Add(1)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("%d Ingest calls stored the event, want 1", n)
	}
	ds, err := stores[0].ListDeliveries(t.Context(), router.DeliveryFilter{Source: "src"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Errorf("%d deliveries stored, want 1 (the winner's)", len(ds))
	}
}

// TestDuplicateBodyAcrossStores is TestDuplicateIngestAcrossStores for
// one signed body replayed under a new id per call: the body hash's
// unique index must store it once, and every other call must report a
// duplicate of the stored id, not an error.
func TestDuplicateBodyAcrossStores(t *testing.T) {
	url, _ := freshSchema(t)
	stores := []*Store{openStore(t, url, Options{MaxConns: 4}), openStore(t, url, Options{MaxConns: 4})}
	const perStore = 10
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	hash := sha256.Sum256([]byte(`{"action":"opened"}`))
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		mu     sync.Mutex
		stored []string
		dupsOf = map[string]int{}
	)
	for i, s := range stores {
		for g := range perStore {
			wg.Go(func() {
				id := fmt.Sprintf("s%d-g%d", i, g)
				ev := &router.EventRecord{Source: "src", ID: id, Name: "n", ReceivedAt: at, BodyHash: hash[:]}
				ds := []router.NewDelivery{{ID: id, Rule: "r", Sink: "k", NextAttemptAt: at}}
				<-start
				dup, err := s.Ingest(t.Context(), ev, ds)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("Ingest %s: %v", id, err)
				case dup:
					dupsOf[ev.ID]++
				default:
					stored = append(stored, ev.ID)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if len(stored) != 1 {
		t.Fatalf("Ingest stored %q, want one event", stored)
	}
	if dupsOf[stored[0]] != 2*perStore-1 || len(dupsOf) != 1 {
		t.Errorf("duplicates of %v, want %d of %s", dupsOf, 2*perStore-1, stored[0])
	}
	ds, err := stores[0].ListDeliveries(t.Context(), router.DeliveryFilter{Source: "src"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].ID != stored[0] {
		t.Errorf("%d deliveries stored, want 1 (the winner's)", len(ds))
	}
}

// TestClaimAcrossStores drains one sink from two stores at once, several
// workers each: SKIP LOCKED must never hand the same row to two of them.
func TestClaimAcrossStores(t *testing.T) {
	url, _ := freshSchema(t)
	stores := []*Store{openStore(t, url, Options{MaxConns: 4}), openStore(t, url, Options{MaxConns: 4})}
	const rows, workersPerStore, batch = 300, 4, 5
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for e := range rows / 10 {
		var ds []router.NewDelivery
		for i := range 10 {
			ds = append(ds, router.NewDelivery{
				ID: fmt.Sprintf("d%03d-%d", e, i), Rule: "r", Sink: "k",
				NextAttemptAt: at.Add(-time.Duration(e*10+i) * time.Millisecond),
			})
		}
		if _, err := stores[e%2].Ingest(t.Context(), &router.EventRecord{Source: "src", ID: fmt.Sprint(e), ReceivedAt: at}, ds); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[string]string{}
		wg   sync.WaitGroup
	)
	for i, s := range stores {
		for w := range workersPerStore {
			owner := fmt.Sprintf("s%d-w%d", i, w)
			wg.Go(func() {
				for {
					cs, err := s.Claim(t.Context(), "k", owner, at, time.Hour, batch)
					if err != nil {
						t.Errorf("Claim: %v", err)
						return
					}
					if len(cs) == 0 {
						return
					}
					mu.Lock()
					for _, c := range cs {
						if prev, ok := seen[c.ID]; ok {
							t.Errorf("%s claimed by %s and %s", c.ID, prev, owner)
						}
						seen[c.ID] = owner
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(seen) != rows {
		t.Errorf("claimed %d distinct deliveries, want %d", len(seen), rows)
	}
}

// listener runs Listen on s in the background and collects what it
// reports.
type listener struct {
	wakes     chan string
	listening chan uint32 // backend pid, each time Listen is ready
	done      chan error  // Listen's result
	cancel    context.CancelFunc
}

func startListen(t *testing.T, s *Store) *listener {
	t.Helper()
	l := &listener{
		wakes:     make(chan string, 100),
		listening: make(chan uint32, 10),
		done:      make(chan error, 1),
	}
	s.onListen = func(pid uint32) { l.listening <- pid }
	ctx, cancel := context.WithCancel(t.Context())
	l.cancel = cancel
	go func() {
		l.done <- s.Listen(ctx, func(sink string) { l.wakes <- sink })
	}()
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	return l
}

// ready waits until Listen is listening and returns its backend's pid.
func (l *listener) ready(t *testing.T) uint32 {
	t.Helper()
	select {
	case pid := <-l.listening:
		return pid
	case err := <-l.done:
		t.Fatalf("Listen returned %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("Listen is not listening after 15s")
	}
	return 0
}

// waitWake waits for a wake-up of sink and returns the other sinks woken
// before it.
func (l *listener) waitWake(t *testing.T, sink string) []string {
	t.Helper()
	var before []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-l.wakes:
			if got == sink {
				return before
			}
			before = append(before, got)
		case <-timeout:
			t.Fatalf("no wake-up for %s after 10s (got %q)", sink, before)
		}
	}
}

func ingestTo(t *testing.T, s *Store, eventID string, sinks ...string) bool {
	t.Helper()
	at := time.Now()
	var ds []router.NewDelivery
	for _, k := range sinks {
		ds = append(ds, router.NewDelivery{ID: eventID + "-" + k, Rule: "r", Sink: k, NextAttemptAt: at})
	}
	dup, err := s.Ingest(t.Context(), &router.EventRecord{Source: "src", ID: eventID, ReceivedAt: at}, ds)
	if err != nil {
		t.Fatalf("Ingest(%s): %v", eventID, err)
	}
	return dup
}

// TestListen checks that another store's Ingest wakes the listener, once
// per sink, that a duplicate wakes nobody, that Listen catches up on
// deliveries made before it listened, and that it stops with its context
// or the store.
func TestListen(t *testing.T) {
	url, _ := freshSchema(t)
	channel := randomName("hookroute_test_")
	a := openStore(t, url, Options{Channel: channel, MaxConns: 2})
	b := openStore(t, url, Options{Channel: channel, MaxConns: 2})

	ingestTo(t, b, "early", "sink-early")
	l := startListen(t, a)
	l.ready(t)
	if before := l.waitWake(t, "sink-early"); len(before) != 0 {
		t.Errorf("woken for %q before the catch-up of sink-early", before)
	}

	ingestTo(t, b, "e1", "sink-1", "sink-2")
	// The store's own Ingest wakes it too (the router wakes its own
	// workers directly; a second wake-up is harmless).
	ingestTo(t, a, "e2", "sink-3")
	if dup := ingestTo(t, b, "e1", "sink-dup"); !dup {
		t.Fatal("second Ingest of e1 stored it again")
	}
	ingestTo(t, b, "e3", "sink-last")
	got := map[string]int{}
	for _, k := range l.waitWake(t, "sink-last") {
		got[k]++
	}
	for _, k := range []string{"sink-1", "sink-2", "sink-3"} {
		if got[k] != 1 {
			t.Errorf("%s woken %d times, want 1", k, got[k])
		}
	}
	if got["sink-dup"] != 0 {
		t.Errorf("a duplicate Ingest woke its sink")
	}

	l.cancel()
	select {
	case err := <-l.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Listen returned %v after its context ended, want context.Canceled", err)
		}
		l.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Listen still running 5s after its context ended")
	}

	// Close stops a running Listen, and a later one returns at once.
	c := openStore(t, url, Options{Channel: channel, MaxConns: 1})
	lc := startListen(t, c)
	lc.ready(t)
	c.Close()
	select {
	case err := <-lc.done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Listen returned %v after Close, want ErrClosed", err)
		}
		lc.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Listen still running 5s after Close")
	}
	if err := c.Listen(t.Context(), func(string) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Listen on a closed store = %v, want ErrClosed", err)
	}
}

// TestListenReconnects kills the listener's backend: Listen must connect
// again, log the outage once, and hear later notifications.
func TestListenReconnects(t *testing.T) {
	url, admin := freshSchema(t)
	channel := randomName("hookroute_test_")
	logs := &recordHandler{}
	a := openStore(t, url, Options{Channel: channel, MaxConns: 2, Logger: slog.New(logs)})
	b := openStore(t, url, Options{Channel: channel, MaxConns: 2})
	l := startListen(t, a)
	pid := l.ready(t)

	var killed bool
	if err := admin.QueryRow(t.Context(), "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	if again := l.ready(t); again == pid {
		t.Fatalf("listening again on the killed backend %d", pid)
	}
	ingestTo(t, b, "after", "sink-after")
	l.waitWake(t, "sink-after")

	if warns := logs.count(slog.LevelWarn); warns != 1 {
		t.Errorf("%d warnings logged for one outage, want 1", warns)
	}
	if infos := logs.count(slog.LevelInfo); infos < 2 { // open, then the recovery
		t.Errorf("%d info messages, want the recovery logged", infos)
	}
}

// recordHandler is a slog.Handler that keeps the records' levels.
type recordHandler struct {
	mu     sync.Mutex
	levels []slog.Level
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.levels = append(h.levels, r.Level)
	return nil
}

func (h *recordHandler) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, v := range h.levels {
		if v == l {
			n++
		}
	}
	return n
}

// body is a typical SalesIQ webhook body, as in the SQLite benchmarks.
var body = []byte(`{"event":"conversation.rated","data":{"rating":"happy","feedback":"` +
	strings.Repeat("x", 300) + `","visitor":{"name":"Ana","email":"ana@example.com"}}}`)

// BenchmarkIngestParallel measures durable ingest throughput: one
// statement and one commit per event, p goroutines per CPU sharing the
// pool.
func BenchmarkIngestParallel(b *testing.B) {
	for _, p := range []int{1, 16} {
		b.Run(fmt.Sprintf("p=%d", p), func(b *testing.B) {
			url, _ := freshSchema(b)
			s := openStore(b, url, Options{})
			ctx := context.Background()
			var seq atomic.Int64
			at := time.Now()
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestUpgradeKeepsDeliveries migrates a schema at version 2, with a
// delivery in it: the operations step must leave it readable, never
// replayed and not leased, and replayable.
func TestUpgradeKeepsDeliveries(t *testing.T) {
	url, admin := freshSchema(t)
	ctx := t.Context()
	ms, err := migrations()
	if err != nil || len(ms) < 3 {
		t.Fatalf("migrations = %d, %v", len(ms), err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_version (version integer NOT NULL PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		ms[0].SQL, ms[1].SQL,
		`INSERT INTO schema_version (version) VALUES (1), (2)`,
		`INSERT INTO events (source, id, name, received_at, headers, body, matched)
			VALUES ('s', 'e1', 'n', '2030-01-01', '{}', '', '[]')`,
		`INSERT INTO deliveries (id, source, event_id, rule, route, sink, status, attempts,
			next_attempt_at, created_at, updated_at, last_error)
			VALUES ('d1', 's', 'e1', 'r', 0, 'k', 'dead', 3, '2030-01-01', '2030-01-01', '2030-01-01', 'boom')`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	storetest.UpgradedDeadDelivery(t, openStore(t, url, Options{MaxConns: 2}), "d1")
}

// TestPruneReleasedKey: a dedup key released (so unlocked) and unused since
// the cut-off goes; ReleaseKey stamps the server's clock, so the suite
// cannot make one old.
func TestPruneReleasedKey(t *testing.T) {
	url, admin := freshSchema(t)
	storetest.PruneReleasedKey(t, openStore(t, url, Options{MaxConns: 2}), func(key string, at time.Time) error {
		_, err := admin.Exec(t.Context(), `UPDATE remote_objects SET updated_at = $1 WHERE dedup_key = $2`, at, key)
		return err
	})
}

// TestPrunePlans guards the shape of the retention statements, which does
// not depend on the statistics: each DELETE is a TID scan of the ctids
// collected by its subquery, and the event step probes deliveries per
// candidate instead of joining against the whole table.
func TestPrunePlans(t *testing.T) {
	url, admin := freshSchema(t)
	openStore(t, url, Options{MaxConns: 1}) // migrates
	// The tables are empty, and a sequential scan of nothing is cheapest;
	// this only makes the planner show the plan of a table of some size.
	if _, err := admin.Exec(t.Context(), "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"deliveries", sqlPruneDeliveries, []string{"Tid Scan on deliveries"}},
		{"events", sqlPruneEvents, []string{"Tid Scan on events", "SubPlan", "deliveries_event"}},
		{"dedup keys", sqlPruneKeys, []string{"Tid Scan on remote_objects"}},
	} {
		rows, err := admin.Query(t.Context(), "EXPLAIN "+tc.query, at, 1000)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var lines []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
		rows.Close()
		plan := strings.Join(lines, "\n")
		for _, w := range tc.want {
			if !strings.Contains(plan, w) {
				t.Errorf("%s: plan lacks %q:\n%s", tc.name, w, plan)
			}
		}
		if strings.Contains(plan, "Anti Join") {
			t.Errorf("%s: plan joins instead of probing:\n%s", tc.name, plan)
		}
	}
}

// TestRelaxCommitIsLocal: in a batch, sqlRelaxCommit turns synchronous
// commit off for that batch's implicit transaction only: the statement
// after it sees it off, the next use of the connection sees it on again.
func TestRelaxCommitIsLocal(t *testing.T) {
	_, conn := freshSchema(t)
	ctx := context.Background()
	b := &pgx.Batch{}
	b.Queue(sqlRelaxCommit)
	b.Queue(`SELECT current_setting('synchronous_commit')`)
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Fatal(err)
	}
	var inBatch string
	if err := br.QueryRow().Scan(&inBatch); err != nil {
		t.Fatal(err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	var after string
	if err := conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if inBatch != "off" || after != "on" {
		t.Errorf("synchronous_commit in the batch %q, after it %q; want off, then on", inBatch, after)
	}
}

// TestProbeWriteFailsWhereWritesFail: the readiness probe really writes.
// Its row is there after it, and a database that refuses the write (a
// trigger stands for a full disk or a read-only standby) fails it while
// pings still pass.
func TestProbeWriteFailsWhereWritesFail(t *testing.T) {
	url, admin := freshSchema(t)
	s := openStore(t, url, Options{})
	ctx := t.Context()
	if err := s.ProbeWrite(ctx); err != nil {
		t.Fatalf("ProbeWrite: %v", err)
	}
	var at time.Time
	if err := admin.QueryRow(ctx, "SELECT at FROM ready_probe WHERE id = 1").Scan(&at); err != nil || time.Since(at) > time.Minute {
		t.Fatalf("ready_probe after ProbeWrite: %v, %v", at, err)
	}
	if _, err := admin.Exec(ctx, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON ready_probe FOR EACH ROW EXECUTE FUNCTION refuse()`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.ProbeWrite(ctx); err == nil || !strings.Contains(err.Error(), "No space left") {
		t.Fatalf("ProbeWrite with writes refused: %v, want the database's error", err)
	}
	if _, err := admin.Exec(ctx, "DROP TRIGGER refuse ON ready_probe"); err != nil {
		t.Fatal(err)
	}
	if err := s.ProbeWrite(ctx); err != nil {
		t.Fatalf("ProbeWrite once writes are taken again: %v", err)
	}
}
