// Ingest and delivery benchmarks. Run them side by side:
//
//	go test -run='^$' -bench=. -benchtime=3s ./router/dispatch
//
// This file is an external test (package dispatch_test): it was written
// when the engine and the store types shared a package, and an internal
// test importing router/sqlite was an import cycle. Its key is testkit's;
// its sink factory builds sinks which never run (the ingest benchmarks
// start no workers).
//
// Every benchmark sends the same kind of request: ~1.5 KB SalesIQ
// conversation.rated bodies with a sad rating, signed with a throwaway
// RSA-2048 key before the timer starts; where a store would see them, each
// is distinct (none is a duplicate).
// The handlers run under b.RunParallel with 16 goroutines per CPU (32 on
// the 2-core machine, as hookload's 32 senders), through
// httptest.NewRecorder: the HTTP server and client are not measured here
// (bench/run.sh measures them).
package dispatch_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/bench/loadgen"
	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/postgres"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/sqlite"
	"github.com/hookroute/hookroute/router/verify"
	"github.com/hookroute/hookroute/sinks"
)

// parallelism gives b.RunParallel 16 goroutines per GOMAXPROCS. With only
// GOMAXPROCS callers, group commit could never batch more than two events.
const parallelism = 16

// bodies is the signed pool, grown on demand and shared by every benchmark
// of the process: each benchmark run opens a fresh database, so the same
// bodies are never duplicates there.
var bodies struct {
	mu   sync.Mutex
	pool []loadgen.Signed
}

// signedBodies returns at least n signed bodies. Call it before
// b.ResetTimer: signing costs ~2 ms a body.
func signedBodies(tb testing.TB, n int) []loadgen.Signed {
	bodies.mu.Lock()
	defer bodies.mu.Unlock()
	if have := len(bodies.pool); have < n {
		more, err := loadgen.Pool(testkit.Key, 0, have, n, nil)
		if err != nil {
			tb.Fatal(err)
		}
		bodies.pool = append(bodies.pool, more...)
	}
	return bodies.pool[:n]
}

// benchRules are ten rules over the SalesIQ view; only sad-chat matches
// the benchmark bodies.
const benchRules = `
  - name: sad-chat
    source: salesiq
    when: chat.rating == "sad"
    to:
      - sink: out
        text: "sad rating from {{ .visitor.name }}: {{ .chat.feedback }}"
  - name: happy-vip
    source: salesiq
    when: chat.rating == "happy" && visitor.email_id endsWith "@vip.example"
    to: [{sink: out, text: "vip"}]
  - name: missed
    source: salesiq
    when: event == "conversation.missed"
    to: [{sink: out, text: "missed"}]
  - name: neutral
    source: salesiq
    when: chat.rating == "neutral"
    to: [{sink: out, text: "neutral"}]
  - name: other-department
    source: salesiq
    when: chat.department_id == "1" && chat.rating != "sad"
    to: [{sink: out, text: "dept"}]
  - name: long-happy
    source: salesiq
    when: chat.rating == "happy" && len(chat.feedback) > 200
    to: [{sink: out, text: "long"}]
  - name: no-operator
    source: salesiq
    when: operator.name == "" && event == "conversation.rated" && chat.status == "Open"
    to: [{sink: out, text: "no operator"}]
  - name: many-attempts
    source: salesiq
    when: attempt > 3
    to: [{sink: out, text: "retried"}]
  - name: us-happy
    source: salesiq
    when: visitor.phone startsWith "+1" && chat.rating == "happy"
    to: [{sink: out, text: "us"}]
  - name: refund-happy
    source: salesiq
    when: chat.rating == "happy" && chat.feedback contains "refund"
    to: [{sink: out, text: "refund"}]
`

// benchConfig is a config with one salesiq source (the bench key), the
// given sink block and rules.
func benchConfig(sinkBlock, rules string) string {
	return `
server:
  listen: "127.0.0.1:0"
store:
  url: "sqlite:unused.db"
egress:
  allow: ["127.0.0.1/32"]
sources:
  - name: salesiq
    type: salesiq
    public_keys:
      - pem: ${BENCH_PUBLIC_KEY}
sinks:
` + sinkBlock + `
rules:
` + rules
}

func loadBench(tb testing.TB, cfg string, f config.SinkFactory) *rules.Runtime {
	rt, err := rules.Load("bench.yaml", []byte(cfg), f, func(name string) (string, bool) {
		if name == "BENCH_PUBLIC_KEY" {
			return testkit.PublicPEM, true
		}
		return "", false
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rt
}

// idleFactory builds "idle" sinks, which the ingest benchmarks never call
// (they start no workers).
type idleFactory struct{}

type idleSink struct{}

func (idleSink) Deliver(context.Context, *router.Delivery) (router.Result, error) {
	return router.Result{}, errors.New("idle sink: not for delivery")
}

func (idleFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	var c struct{}
	if err := config.DecodeStrict(node, "", &c); err != nil {
		return nil, err
	}
	return idleSink{}, nil
}

func (idleFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	if kind != "idle" {
		return nil, false
	}
	return []router.FieldSpec{{Name: "text"}}, true
}

const idleSinkBlock = `
  - name: out
    type: idle
`

// openStore opens a fresh SQLite store in b's temp dir.
func openStore(b *testing.B) *sqlite.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// cycledPool is the pool size for handlers that keep no state: their
// requests may repeat, which saves signing time.
const cycledPool = 2048

// runIngest sends b.N signed bodies through h in parallel and reports
// events/s; every answer must be want. With unique, every body is distinct
// (a router with a store would answer a repeat as a duplicate); otherwise
// a small pool is cycled.
func runIngest(b *testing.B, h http.Handler, want int, unique bool) {
	n := b.N
	if !unique {
		n = min(n, cycledPool)
	}
	pool := signedBodies(b, n)
	var next atomic.Int64
	var bad atomic.Int64
	var firstBad atomic.Value
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := pool[(next.Add(1)-1)%int64(len(pool))]
			req := httptest.NewRequest(http.MethodPost, "/hooks/salesiq", bytes.NewReader(s.Body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(loadgen.Header, s.Sig)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				bad.Add(1)
				firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %s", rec.Code, strings.TrimSpace(rec.Body.String())))
			}
		}
	})
	b.StopTimer()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d of %d answers were not %d; first: %v", n, b.N, want, firstBad.Load())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIngestVerified is the router's whole ingest: read the body,
// verify the RSA-2048 signature, decode, evaluate 10 rules (1 matches),
// and commit the event and its delivery to SQLite (WAL, synchronous=FULL,
// group commit) before answering 202.
func BenchmarkIngestVerified(b *testing.B) {
	rt := loadBench(b, benchConfig(idleSinkBlock, benchRules), idleFactory{})
	store := openStore(b)
	r := dispatch.New(rt, store, dispatch.Options{})
	runIngest(b, r.IngestHandler(), http.StatusAccepted, true)
	st := store.Stats()
	b.ReportMetric(st.AvgBatch(), "writes/commit")
	if st.Events < int64(b.N) {
		b.Fatalf("store committed %d events, want %d", st.Events, b.N)
	}
}

// nopStore commits nothing: with it, the ingest benchmark measures verify,
// decode, rules and the answer without the database.
type nopStore struct{ router.Store }

func (nopStore) Ingest(context.Context, *router.EventRecord, []router.NewDelivery) (bool, error) {
	return false, nil
}

// BenchmarkIngestVerifiedPostgres is BenchmarkIngestVerified on the
// PostgreSQL store (HOOKROUTE_TEST_POSTGRES; skipped without it), one
// transaction per event, as several replicas would run it.
func BenchmarkIngestVerifiedPostgres(b *testing.B) {
	rt := loadBench(b, benchConfig(idleSinkBlock, benchRules), idleFactory{})
	r := dispatch.New(rt, openPostgres(b), dispatch.Options{})
	runIngest(b, r.IngestHandler(), http.StatusAccepted, true)
}

// openPostgres opens the PostgreSQL store in a fresh schema, dropped when
// the benchmark ends.
func openPostgres(b *testing.B) router.Store {
	base := os.Getenv("HOOKROUTE_TEST_POSTGRES")
	if base == "" {
		b.Skip("HOOKROUTE_TEST_POSTGRES is not set: skipping the PostgreSQL benchmarks")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	schema := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	s, err := postgres.Open(ctx, base+sep+"search_path="+schema, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Close()
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	return s
}

// BenchmarkIngestNoStore is BenchmarkIngestVerified without the database,
// to split the cost between the CPU stages and the durable commit.
func BenchmarkIngestNoStore(b *testing.B) {
	rt := loadBench(b, benchConfig(idleSinkBlock, benchRules), idleFactory{})
	r := dispatch.New(rt, nopStore{}, dispatch.Options{})
	runIngest(b, r.IngestHandler(), http.StatusAccepted, false)
}

// BenchmarkBaselineVerifyOnly sends the same requests to a handler that
// only reads the body (with the router's 1 MiB cap) and verifies the
// signature with the router's own verifier, then answers 202: the ceiling
// for any verified ingest.
func BenchmarkBaselineVerifyOnly(b *testing.B) {
	key, err := verify.ParseRSAPublicKey([]byte(testkit.PublicPEM))
	if err != nil {
		b.Fatal(err)
	}
	v, err := verify.NewSalesIQ([]*rsa.PublicKey{key})
	if err != nil {
		b.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
		if err != nil {
			http.Error(w, "could not read body", http.StatusBadRequest)
			return
		}
		if err := v.Verify(req.Header, body, time.Now()); err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"id":"x","matched":["sad-chat"],"deliveries":1}` + "\n"))
	})
	runIngest(b, h, http.StatusAccepted, false)
}

// BenchmarkDeliver measures the delivery side alone: b.N events are
// ingested before the timer starts, then the workers (the real http sink,
// the default concurrency and a local HTTP endpoint in this process) drain
// them; it reports deliveries/s. The endpoint's own cost is included, as
// hookload sink's is in bench/run.sh (there on the other core).
func BenchmarkDeliver(b *testing.B) {
	for _, conc := range []int{4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) { benchDeliver(b, conc, func() router.Store { return openStore(b) }) })
	}
}

// BenchmarkDeliverPostgres is BenchmarkDeliver on the PostgreSQL store.
func BenchmarkDeliverPostgres(b *testing.B) {
	for _, conc := range []int{4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) { benchDeliver(b, conc, func() router.Store { return openPostgres(b) }) })
	}
}

func benchDeliver(b *testing.B, conc int, open func() router.Store) {
	var got atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if got.Add(1) == n {
			close(done)
		}
	}))
	defer endpoint.Close()
	sinkBlock := fmt.Sprintf(`
  - name: out
    type: http
    url: %s/deliver
    concurrency: %d
`, endpoint.URL, conc)
	rules := `
  - name: sad-chat
    source: salesiq
    when: chat.rating == "sad"
    to:
      - sink: out
`
	reg := sinks.NewRegistry()
	reg.SetEgressAllow([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}) // the endpoint is on loopback
	rt := loadBench(b, benchConfig(sinkBlock, rules), reg)
	store := open()
	r := dispatch.New(rt, store, dispatch.Options{PollInterval: 50 * time.Millisecond})
	h := r.IngestHandler()
	pool := signedBodies(b, b.N)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 32 { // fill the queue fast, with group commit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				req := httptest.NewRequest(http.MethodPost, "/hooks/salesiq", bytes.NewReader(pool[i].Body))
				req.Header.Set(loadgen.Header, pool[i].Sig)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusAccepted {
					b.Errorf("ingest: %d %s", rec.Code, rec.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	b.ResetTimer()
	go func() {
		defer close(stopped)
		r.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(5*time.Minute + time.Duration(n)*time.Millisecond):
		b.Errorf("delivered %d of %d", got.Load(), n)
	}
	b.StopTimer()
	cancel()
	<-stopped
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
