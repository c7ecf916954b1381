package router_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookroute/hookroute/router"
)

// TestDeliveriesYieldToSaturatedIngest: while more webhook requests are in
// flight than the CPUs can work on, a sink's workers hold back their claims
// (acknowledgements first), but only for a bounded time, so deliveries still
// go out during a burst that does not end; once the requests are answered,
// deliveries go out at once.
func TestDeliveriesYieldToSaturatedIngest(t *testing.T) {
	f := &countingFactory{}
	rt, st := loadWithStore(t, config, f, pubEnv)
	reg := prometheus.NewRegistry()
	r := router.New(rt, st, router.Options{PollInterval: 50 * time.Millisecond, Metrics: router.NewMetrics(reg)})
	runRouter(t, r)
	h := r.IngestHandler()
	n, release := saturateIngest(t, r)
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

// saturateIngest holds enough webhook requests in flight, each stuck
// reading its body, for r's ingest to count as saturated, until release
// (or the test's end). It returns how many it holds.
func saturateIngest(t *testing.T, r *router.Router) (n int, release func()) {
	t.Helper()
	h := r.IngestHandler()
	n = 4*runtime.GOMAXPROCS(0) + 1
	var wg sync.WaitGroup
	writers := make([]*io.PipeWriter, n)
	for i := range writers {
		pr, pw := io.Pipe()
		writers[i] = pw
		req := httptest.NewRequest(http.MethodPost, "/hooks/siq", pr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.ServeHTTP(httptest.NewRecorder(), req)
		}()
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, pw := range writers {
				pw.CloseWithError(errors.New("sender gave up"))
			}
			wg.Wait()
		})
	}
	t.Cleanup(release)
	waitFor(t, "the held requests to be in flight", func() bool { return r.IngestInFlight() == n })
	return n, release
}

// TestYieldEndsWhenDeliveriesFallBehind: deliveries hold back for a
// saturated ingest only while they are less than 30 s behind. Beyond that
// the saturation is an overload, not a burst, and waiting deliveries would
// only pile up: the next claim goes ahead without waiting.
func TestYieldEndsWhenDeliveriesFallBehind(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	f := &countingFactory{}
	rt, st := loadWithStore(t, config, f, pubEnv)
	r := router.New(rt, st, router.Options{PollInterval: 50 * time.Millisecond, Now: clock.Now})
	runRouter(t, r)
	h := r.IngestHandler()
	saturateIngest(t, r)

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
