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
)

// TestDeliveriesYieldToSaturatedIngest: while more webhook requests are in
// flight than the CPUs can work on, a sink's workers hold back their claims
// (acknowledgements first), but only for a bounded time, so deliveries still
// go out during a burst that does not end; once the requests are answered,
// deliveries go out at once.
func TestDeliveriesYieldToSaturatedIngest(t *testing.T) {
	r, _, f := setup(t)
	runRouter(t, r)
	h := r.IngestHandler()

	// Hold enough requests in flight, each stuck reading its body.
	n := 4*runtime.GOMAXPROCS(0) + 1
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
	released := false
	release := func() {
		if released {
			return
		}
		released = true
		for _, pw := range writers {
			pw.CloseWithError(errors.New("sender gave up"))
		}
		wg.Wait()
	}
	t.Cleanup(release)
	waitFor(t, "the held requests to be in flight", func() bool { return r.IngestInFlight() == n })

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
