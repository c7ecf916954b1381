package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router/verify"
)

// signedEvent is a SalesIQ body, its signature and the event id hookroute
// derives from it.
type signedEvent struct {
	id   string
	body []byte
	sig  string
}

// signEvents signs n distinct sad ratings (entity ids prefix0, prefix1, …)
// up front, on four goroutines, so that a load test measures the posting
// alone.
func signEvents(t *testing.T, n int, prefix, feedback string) []signedEvent {
	t.Helper()
	events := make([]signedEvent, n)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				entity := fmt.Sprint(prefix, i)
				body := salesiqEvent(entity, "1", feedback, 1)
				sig, err := verify.SignSalesIQ(e2eKey, body)
				if err != nil {
					t.Error(err)
					return
				}
				// salesiqEvent's event_time is fixed.
				events[i] = signedEvent{"conversation.rated:" + entity + ":1567065865617", body, sig}
			}
		}()
	}
	wg.Wait()
	return events
}

// answer is what posting one event got: its status, how long the answer
// took and when it came.
type answer struct {
	code int
	took time.Duration
	at   time.Time
}

// postEvents posts events to url over conns connections, event i not
// before due(i) (nil: each as soon as a connection is free), and returns
// every answer. A transport error fails the test.
func postEvents(t *testing.T, url string, events []signedEvent, conns int, due func(i int) time.Time) []answer {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 30 * time.Second}
	out := make([]answer, len(events))
	next := make(chan int, len(events))
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(events[i].body))
				req.Header.Set("x-siqsignature", events[i].sig)
				t0 := time.Now()
				resp, err := client.Do(req)
				out[i].at = time.Now()
				out[i].took = out[i].at.Sub(t0)
				if err != nil {
					t.Errorf("event %d: %v", i, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				out[i].code = resp.StatusCode
			}
		}()
	}
	for i := range events {
		if due != nil {
			time.Sleep(time.Until(due(i)))
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// latencies returns how long each answer took, sorted, after checking
// that every one was 202.
func latencies(t *testing.T, answers []answer) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, len(answers))
	for i, a := range answers {
		if a.code != http.StatusAccepted {
			t.Fatalf("event %d: HTTP %d, want 202", i, a.code)
		}
		lat[i] = a.took
	}
	slices.Sort(lat)
	return lat
}
