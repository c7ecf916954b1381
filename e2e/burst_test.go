package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router/verify"
)

// TestBurstIsAcknowledgedInTime is reliability.md's L-02: a fan-in spike of
// 5,000 signed events sent as fast as 64 connections allow is acknowledged
// whole, every answer well inside SalesIQ's 5-second timeout (a slower one
// would make SalesIQ send the event again), and delivered once each.
func TestBurstIsAcknowledgedInTime(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s: 5,000 signed events")
	}
	sink := &fakeHTTPSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	p := startRouter(t, t.TempDir(), auditConfig(), auditEnv(t, srv.URL))

	// Sign first, so that the burst is the posting alone.
	const n, conns = 5000, 64
	type signed struct {
		body []byte
		sig  string
	}
	events := make([]signed, n)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				body := salesiqEvent(fmt.Sprint("burst", i), "1", "spike", 1)
				sig, err := verify.SignSalesIQ(e2eKey, body)
				if err != nil {
					t.Error(err)
					return
				}
				events[i] = signed{body, sig}
			}
		}()
	}
	wg.Wait()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	codes := make([]int, n)
	start := time.Now()
	next := make(chan int)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				req, _ := http.NewRequest(http.MethodPost, p.ingest+"/hooks/salesiq", bytes.NewReader(events[i].body))
				req.Header.Set("x-siqsignature", events[i].sig)
				t0 := time.Now()
				resp, err := client.Do(req)
				lat[i] = time.Since(t0)
				if err != nil {
					t.Errorf("event %d: %v", i, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	for i, c := range codes {
		if c != 202 {
			t.Fatalf("event %d: HTTP %d, want 202", i, c)
		}
	}
	slices.Sort(lat)
	p99, worst := lat[n*99/100], lat[n-1]
	t.Logf("%d events in %v over %d connections: p50 %v, p99 %v, max %v", n, took.Round(time.Millisecond), conns, lat[n/2], p99, worst)
	// SalesIQ gives up on an answer after 5 s; reliability.md asks p99 ≤ 2 s.
	if worst >= 5*time.Second || p99 > 2*time.Second {
		t.Errorf("acknowledgements too slow for SalesIQ: p99 %v, max %v", p99, worst)
	}

	eventually(t, 60*time.Second, "every event delivered", func() bool {
		keys, _ := sink.received()
		return len(keys) >= n
	})
	keys, _ := sink.received()
	uniq := map[string]bool{}
	for _, k := range keys {
		uniq[k] = true
	}
	if len(uniq) != n || len(keys) != n {
		t.Errorf("%d requests, %d distinct, for %d events", len(keys), len(uniq), n)
	}
}
