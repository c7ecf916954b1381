package dispatch_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/sqlite"
	"github.com/hookroute/hookroute/router/verify"
)

// countingFactory builds "count" sinks that record deliveries and fail as
// told; it stands in for the real integrations, which have their own tests.
type countingFactory struct {
	mu    sync.Mutex
	sinks map[string]*countingSink
}

type countingSink struct {
	mu      sync.Mutex
	ids     []string
	remotes []string // d.RemoteID as each delivery saw it
	fail    func(attempt int) error
	down    bool // every attempt fails with a retryable error (setDown)
}

// setDown takes the sink down (every attempt a 503) or back up.
func (s *countingSink) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *countingSink) Deliver(_ context.Context, d *router.Delivery) (router.Result, error) {
	time.Sleep(5 * time.Millisecond) // long enough for a second worker to overlap
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remotes = append(s.remotes, d.RemoteID)
	if s.down {
		return router.Result{StatusCode: 503}, errors.New("503 service unavailable")
	}
	if s.fail != nil {
		if err := s.fail(d.Attempt); err != nil {
			return router.Result{StatusCode: 503}, err
		}
	}
	s.ids = append(s.ids, d.ID)
	if d.DedupKey != "" && d.RemoteID == "" {
		return router.Result{StatusCode: 201, RemoteID: "T-" + d.ID}, nil
	}
	return router.Result{StatusCode: 200}, nil
}

// requests is the number of Deliver calls so far.
func (s *countingSink) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.remotes)
}

func (s *countingSink) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func (f *countingFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &countingSink{}
	if f.sinks == nil {
		f.sinks = map[string]*countingSink{}
	}
	f.sinks[name] = s
	return s, nil
}

func (f *countingFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	return []router.FieldSpec{{Name: "text"}}, kind == "count"
}

var key = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

func pubPEM() string {
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

const routerConfig = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: a, type: count, retry: {max_attempts: 3, initial: 10ms, max_interval: 20ms}}
  - {name: b, type: count}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: a, text: "{{ .visitor.name }}"}, {sink: b}]}
  - {name: all, when: "true", to: [{sink: b}]}
`

// flakyStore fails Ingest while down, to stand for a store that cannot be
// reached, and ProbeWrite while probeDown; everything else goes to the
// real store.
type flakyStore struct {
	router.Store
	mu        sync.Mutex
	down      bool
	probeDown bool
	probes    atomic.Int64
}

func (s *flakyStore) setProbeDown(down bool) {
	s.mu.Lock()
	s.probeDown = down
	s.mu.Unlock()
}

func (s *flakyStore) ProbeWrite(ctx context.Context) error {
	s.probes.Add(1)
	s.mu.Lock()
	down := s.probeDown
	s.mu.Unlock()
	if down {
		return errors.New("database or disk is full")
	}
	return s.Store.ProbeWrite(ctx)
}

func (s *flakyStore) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *flakyStore) Ingest(ctx context.Context, ev *router.EventRecord, ds []router.NewDelivery) (bool, error) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return false, errors.New("disk I/O error")
	}
	return s.Store.Ingest(ctx, ev, ds)
}

// loadWithStore loads conf with sinks from f and variables from env, and
// opens a SQLite store in a temporary directory, closed after the test.
func loadWithStore(t *testing.T, conf string, f config.SinkFactory, env func(string) (string, bool)) (*rules.Runtime, *sqlite.Store) {
	t.Helper()
	rt, err := rules.Load("rules.yaml", []byte(conf), f, env)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return rt, st
}

// pubEnv supplies the test key as ${PUB}.
func pubEnv(k string) (string, bool) { return pubPEM(), k == "PUB" }

func setup(t *testing.T) (*dispatch.Router, *flakyStore, *countingFactory) {
	t.Helper()
	f := &countingFactory{}
	rt, st := loadWithStore(t, routerConfig, f, pubEnv)
	fs := &flakyStore{Store: st}
	return dispatch.New(rt, fs, dispatch.Options{PollInterval: 50 * time.Millisecond}), fs, f
}

func post(t *testing.T, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	sig, err := verify.SignSalesIQ(key, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/hooks/siq", strings.NewReader(body))
	req.Header.Set("x-siqsignature", sig)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func event(id, rating string) string {
	return `{"event":"conversation.rated","entity_id":"` + id + `","event_time":"1","attempt":1,"entity":{"rating":"` + rating + `","visitor":{"name":"V"}}}`
}

func TestFanOutAndRetry(t *testing.T) {
	r, _, f := setup(t)
	f.sinks["a"].fail = func(attempt int) error {
		if attempt < 3 {
			return errors.New("503 from the far side")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	w := post(t, r.IngestHandler(), event("1", "sad"))
	if w.Code != 202 || !strings.Contains(w.Body.String(), `"matched":["sad","all"],"deliveries":3`) {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.sinks["a"].delivered()) < 1 || len(f.sinks["b"].delivered()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a got %v, b got %v", f.sinks["a"].delivered(), f.sinks["b"].delivered())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if a, b := f.sinks["a"].delivered(), f.sinks["b"].delivered(); len(a) != 1 || len(b) != 2 || b[0] == b[1] {
		t.Fatalf("a got %v, b got %v; want one to a after two failures, two distinct to b", a, b)
	}
	d, err := r.Store().GetDelivery(context.Background(), f.sinks["a"].delivered()[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != router.StatusDelivered || len(d.AttemptLog) != 3 || d.AttemptLog[0].Outcome != router.OutcomeRetry {
		t.Fatalf("delivery %+v", d)
	}
}

func TestStoreDownAnswers503(t *testing.T) {
	r, fs, _ := setup(t)
	fs.setDown(true)
	if w := post(t, r.IngestHandler(), event("2", "sad")); w.Code != 503 {
		t.Fatalf("store down: %d %s, want 503", w.Code, w.Body)
	}
	fs.setDown(false)
	if w := post(t, r.IngestHandler(), event("2", "sad")); w.Code != 202 {
		t.Fatalf("store back: %d %s, want 202", w.Code, w.Body)
	}
}

func TestExpiredLeaseIsClaimedAgain(t *testing.T) {
	r, fs, f := setup(t)
	if w := post(t, r.IngestHandler(), event("3", "happy")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	// A worker of a process that died: it claimed the delivery, then
	// nothing more.
	c, err := fs.Claim(context.Background(), "b", "dead-worker", time.Now(), 200*time.Millisecond, 10)
	if err != nil || len(c) != 1 {
		t.Fatalf("claim: %v, %d", err, len(c))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.sinks["b"].delivered()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("delivery not claimed again after its lease ran out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := fs.Finish(context.Background(), c[0].ID, "dead-worker", router.Finish{Status: router.StatusDelivered, Attempt: router.AttemptRecord{At: time.Now(), Outcome: router.OutcomeDelivered}}); !errors.Is(err, router.ErrLeaseLost) {
		t.Fatalf("stale owner's Finish = %v, want ErrLeaseLost", err)
	}
}

// TestDedupKeySerialises sends five events about one chat at once: the
// first delivery creates the remote object and every later one sees its
// id (had two run at once, both would have created one).
func TestDedupKeySerialises(t *testing.T) {
	f := &countingFactory{}
	src := strings.Replace(routerConfig, `{sink: b}]}
  - {name: all`, `{sink: b, dedup_key: "chat-{{ .entity.chat_id }}"}]}
  - {name: all`, 1)
	rt, st := loadWithStore(t, src, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 50 * time.Millisecond})
	for i := 0; i < 5; i++ {
		body := `{"event":"conversation.rated","entity_id":"c1","event_time":"` + string(rune('0'+i)) + `","entity":{"chat_id":"c1","rating":"sad"}}`
		if w := post(t, r.IngestHandler(), body); w.Code != 202 {
			t.Fatalf("ingest %d: %d %s", i, w.Code, w.Body)
		}
	}
	runRouter(t, r)
	b := f.sinks["b"]
	// 5 from "sad" with the key, 5 from "all".
	waitFor(t, "10 deliveries to b", func() bool { return len(b.delivered()) >= 10 })
	b.mu.Lock()
	defer b.mu.Unlock()
	var created, followUps int
	var first string
	for _, rem := range b.remotes {
		if rem == "" {
			continue
		}
		followUps++
		if first == "" {
			first = rem
		}
		if rem != first {
			t.Errorf("follow-ups saw remote ids %q and %q: two objects were created", first, rem)
		}
	}
	created = 5 - followUps // the 5 deliveries of "all" have no key and see ""
	if created != 1 || followUps != 4 {
		t.Errorf("keyed deliveries: %d created, %d follow-ups; want 1 and 4 (remotes %q)", created, followUps, b.remotes)
	}
}

// TestReadyProbesWithAWrite: /readyz rests on the latest commit. A store
// that answers pings but refuses writes (a full disk) makes it 503 at the
// first probe, without waiting for a webhook to fail; a failed ingest
// makes it 503 at once; and a commit that succeeds, an ingest's or a
// probe's, makes it 200 again at once, not seconds later. Probes run at
// most once a second, one at a time.
func TestReadyProbesWithAWrite(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	tick := func(d time.Duration) { clock.Add(int64(d)) }
	f := &countingFactory{}
	rt, st := loadWithStore(t, routerConfig, f, pubEnv)
	fs := &flakyStore{Store: st}
	r := dispatch.New(rt, fs, dispatch.Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	h := r.IngestHandler()
	ready := func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code
	}
	if c := ready(); c != 200 || fs.probes.Load() != 1 {
		t.Fatalf("readyz at start: %d after %d probes, want 200 after 1", c, fs.probes.Load())
	}

	// The disk fills: the next probe fails, before any webhook has.
	fs.setProbeDown(true)
	if c := ready(); c != 200 {
		t.Errorf("readyz within a second of a good probe: %d, want 200 (not probed again)", c)
	}
	tick(1100 * time.Millisecond)
	if c := ready(); c != 503 || fs.probes.Load() != 2 {
		t.Errorf("readyz with the probe write failing: %d after %d probes, want 503 after 2", c, fs.probes.Load())
	}

	// Space returns: the first webhook that commits makes it ready, though
	// the probe would still fail and the failure is not a second old.
	if w := post(t, h, event("r1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	if c := ready(); c != 200 {
		t.Errorf("readyz right after a commit: %d, want 200", c)
	}

	// An ingest that fails makes it unready at once, though a probe a
	// moment ago succeeded.
	fs.setProbeDown(false)
	tick(1100 * time.Millisecond)
	if c := ready(); c != 200 {
		t.Fatalf("readyz with the store back: %d", c)
	}
	fs.setDown(true)
	if w := post(t, h, event("r2", "sad")); w.Code != 503 {
		t.Fatalf("store down: %d", w.Code)
	}
	if c := ready(); c != 503 {
		t.Errorf("readyz after a failed commit: %d, want 503", c)
	}
	// No webhook comes (the balancer sends none to an unready replica),
	// but the store takes writes again: the next probe, a second later,
	// makes it ready.
	fs.setDown(false)
	tick(1100 * time.Millisecond)
	if c := ready(); c != 200 {
		t.Errorf("readyz after a failed ingest and a good probe: %d, want 200", c)
	}

	// Twenty readiness checks at once share one probe.
	tick(1100 * time.Millisecond)
	before := fs.probes.Load()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); ready() }()
	}
	wg.Wait()
	if n := fs.probes.Load() - before; n != 1 {
		t.Errorf("20 concurrent readiness checks made %d probe writes, want 1", n)
	}
}
