package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/verify"
)

// TestDeliveriesYieldToSaturatedIngest: while more webhook requests are in
// flight than the CPUs can work on, a sink's workers hold back their claims
// (acknowledgements first), but only for a bounded time, so deliveries still
// go out during a burst that does not end; once the requests are answered,
// deliveries go out at once.
func TestDeliveriesYieldToSaturatedIngest(t *testing.T) {
	f := &countingFactory{}
	rt, st := loadWithStore(t, routerConfig, f, pubEnv)
	hs := newHoldStore(st)
	reg := prometheus.NewRegistry()
	r := dispatch.New(rt, hs, dispatch.Options{PollInterval: 50 * time.Millisecond, Metrics: dispatch.NewMetrics(reg)})
	runRouter(t, r)
	h := r.IngestHandler()
	n, release := saturateIngest(t, r, hs)
	if got := gathered(t, reg, "hookroute_ingest_in_flight", ""); got != float64(n) {
		t.Errorf("hookroute_ingest_in_flight = %v, want %d", got, n)
	}

	start := time.Now()
	if w := post(t, h, event("y1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	time.Sleep(100 * time.Millisecond)
	if got := f.sinks["a"].delivered(); len(got) != 0 && time.Since(start) < 200*time.Millisecond {
		t.Fatalf("delivered %v within 100 ms while ingest was saturated; want the claim held back", got)
	}
	waitFor(t, "the delivery to go out while ingest stays saturated", func() bool { return len(f.sinks["a"].delivered()) == 1 })
	if r.IngestInFlight() != n {
		t.Fatalf("%d requests in flight, want the %d held ones still", r.IngestInFlight(), n)
	}
	if got := gathered(t, reg, "hookroute_delivery_claims_deferred_total", "a"); got < 1 {
		t.Errorf("hookroute_delivery_claims_deferred_total{sink=a} = %v, want at least 1", got)
	}

	release()
	if got := r.IngestInFlight(); got != 0 {
		t.Fatalf("%d requests in flight after they were answered", got)
	}
	start = time.Now()
	if w := post(t, h, event("y2", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	waitFor(t, "the second delivery", func() bool { return len(f.sinks["a"].delivered()) == 2 })
	t.Logf("unsaturated: delivered %v after its acknowledgement", time.Since(start))
}

// holdStore is the real store with a gate in front of Ingest: the ingest
// of an event whose id contains "hold-" waits until release (or until its
// context ends), so that a test can keep verified requests waiting for
// their commit.
type holdStore struct {
	router.Store
	gate chan struct{}
	once sync.Once
}

func newHoldStore(st router.Store) *holdStore {
	return &holdStore{Store: st, gate: make(chan struct{})}
}

func (s *holdStore) Ingest(ctx context.Context, ev *router.EventRecord, ds []router.NewDelivery) (bool, error) {
	if strings.Contains(ev.ID, "hold-") {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return s.Store.Ingest(ctx, ev, ds)
}

func (s *holdStore) release() { s.once.Do(func() { close(s.gate) }) }

// saturateIngest holds enough signed webhook requests in flight, each
// verified and waiting for its commit at hs's gate, for r's ingest to count
// as saturated, until release (or the test's end). It returns how many it
// holds. The held events go to sink b only.
func saturateIngest(t *testing.T, r *dispatch.Router, hs *holdStore) (n int, release func()) {
	t.Helper()
	h := r.IngestHandler()
	n = r.SaturatedAbove() + 1
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w := post(t, h, event(fmt.Sprint("hold-", i), "happy")); w.Code != 202 {
				t.Errorf("held request %d: %d %s", i, w.Code, w.Body)
			}
		}()
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			hs.release()
			wg.Wait()
		})
	}
	t.Cleanup(release)
	waitFor(t, "the held requests to be in flight", func() bool { return r.IngestInFlight() == n })
	return n, release
}

// TestSlowBodyIsNotIngestLoad: a request whose body is still arriving is
// not in flight (the workers would hold back deliveries for it, and ten
// slow clients would slow every delivery); once its body is read and
// verified, while it waits for its commit, it is.
func TestSlowBodyIsNotIngestLoad(t *testing.T) {
	f := &countingFactory{}
	rt, st := loadWithStore(t, routerConfig, f, pubEnv)
	hs := newHoldStore(st)
	r := dispatch.New(rt, hs, dispatch.Options{PollInterval: 50 * time.Millisecond})
	h := r.IngestHandler()

	body := event("hold-slow", "sad")
	sig, err := verify.SignSalesIQ(key, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req := httptest.NewRequest(http.MethodPost, "/hooks/siq", pr)
	req.Header.Set("x-siqsignature", sig)
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); h.ServeHTTP(w, req) }()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")); hs.release(); <-done })

	// A pipe's write returns once the handler has read the bytes: the
	// handler is inside its body read now, and stays there.
	half := len(body) / 2
	if _, err := io.WriteString(pw, body[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if got := r.IngestInFlight(); got != 0 {
		t.Fatalf("%d requests in flight while the only one is still sending its body, want 0", got)
	}

	// The rest of the body: the request verifies and waits at the gate.
	if _, err := io.WriteString(pw, body[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	waitFor(t, "the verified request to count as in flight", func() bool { return r.IngestInFlight() == 1 })
	hs.release()
	<-done
	if w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	if got := r.IngestInFlight(); got != 0 {
		t.Fatalf("%d requests in flight after the answer, want 0", got)
	}
}

// TestYieldEndsWhenDeliveriesFallBehind: deliveries hold back for a
// saturated ingest only while they are less than a second behind. Beyond
// that they would only pile up behind the acknowledgements: the next
// claim goes ahead without waiting.
func TestYieldEndsWhenDeliveriesFallBehind(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	f := &countingFactory{}
	rt, st := loadWithStore(t, routerConfig, f, pubEnv)
	hs := newHoldStore(st)
	r := dispatch.New(rt, hs, dispatch.Options{PollInterval: 50 * time.Millisecond, Now: clock.Now})
	runRouter(t, r)
	h := r.IngestHandler()
	saturateIngest(t, r, hs)

	// A delivery that has been due for a minute when it is claimed (at the
	// yield's floor)...
	if w := post(t, h, event("behind1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	clock.Add(time.Minute)
	waitFor(t, "the first delivery", func() bool { return len(f.sinks["a"].delivered()) == 1 })

	// ...shows the sink that far behind: the next one is claimed at once,
	// though the ingest is still saturated.
	start := time.Now()
	if w := post(t, h, event("behind2", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	waitFor(t, "the second delivery", func() bool { return len(f.sinks["a"].delivered()) == 2 })
	// Held back, it would have waited the whole 250 ms: the ingest stays
	// saturated throughout.
	if took := time.Since(start); took >= 240*time.Millisecond {
		t.Errorf("second delivery took %v: held back for the ingest although the sink was a minute behind", took)
	}
}

// gathered is the value of the metric name (with label sink, unless sink
// is empty) in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name, sink string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if sink != "" && !hasLabel(m.GetLabel(), "sink", sink) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func hasLabel(ls []*dto.LabelPair, name, value string) bool {
	for _, l := range ls {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestSinksProgressUnderSaturatedIngest: while ingest stays saturated,
// every sink's deliveries keep going out, the second sink's as well as the
// first's: yielding to acknowledgements shapes how deliveries share the
// CPU, not whether they run.
func TestSinksProgressUnderSaturatedIngest(t *testing.T) {
	f := &countingFactory{}
	rt, st := loadWithStore(t, routerConfig, f, pubEnv)
	hs := newHoldStore(st)
	r := dispatch.New(rt, hs, dispatch.Options{PollInterval: 50 * time.Millisecond})
	runRouter(t, r)
	h := r.IngestHandler()
	n, _ := saturateIngest(t, r, hs)

	const events = 10
	for i := range events {
		if w := post(t, h, event(fmt.Sprint("p", i), "sad")); w.Code != 202 {
			t.Fatalf("ingest: %d %s", w.Code, w.Body)
		}
	}
	// Each sad event makes one delivery to a and two to b.
	waitFor(t, "both sinks' deliveries while ingest stays saturated", func() bool {
		return len(f.sinks["a"].delivered()) == events && len(f.sinks["b"].delivered()) == 2*events
	})
	if got := r.IngestInFlight(); got != n {
		t.Fatalf("%d requests in flight, want the %d held ones still", got, n)
	}
}
