package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
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

// eventStream is a stream of signed events from senders that behave as
// SalesIQ does across a router's restarts: each event is posted by its own
// goroutine and posted again every 100 ms, for up to 8 s, while the router
// is unreachable or answers 5xx.
type eventStream struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	acked    map[string]bool // event ids answered 202, or 200 for a repeat
	failed   int             // events that failed every attempt
	attempts atomic.Int64    // requests sent, repeats included
	sending  atomic.Bool     // events are still being started
}

// streamEvents starts n sad ratings (entity ids base, base+1, …), one
// every `every`, each posted to url() as it is at that attempt (a
// restarted router may listen elsewhere).
func streamEvents(t *testing.T, n, base int, every time.Duration, url func() string) *eventStream {
	s := &eventStream{acked: map[string]bool{}}
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(i int) {
		defer s.wg.Done()
		body := salesiqEvent(fmt.Sprint(base+i), "1", "stream", 1)
		sig, err := verify.SignSalesIQ(e2eKey, body)
		if err != nil {
			t.Error(err)
			return
		}
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			s.attempts.Add(1)
			req, _ := http.NewRequest(http.MethodPost, url()+"/hooks/salesiq", bytes.NewReader(body))
			req.Header.Set("x-siqsignature", sig)
			resp, err := client.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted {
					var r struct{ ID string }
					json.Unmarshal(b, &r)
					s.mu.Lock()
					s.acked[r.ID] = true
					s.mu.Unlock()
					return
				}
				if resp.StatusCode < 500 {
					t.Errorf("event %d: HTTP %d %s", i, resp.StatusCode, b)
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.mu.Lock()
		s.failed++
		s.mu.Unlock()
	}
	s.sending.Store(true)
	s.wg.Add(1) // for the starter itself, so that wait cannot return early
	go func() {
		defer s.wg.Done()
		for i := range n {
			s.wg.Add(1)
			go send(i)
			time.Sleep(every)
		}
		s.sending.Store(false)
	}()
	return s
}

// wait blocks until every event is acknowledged or has failed every
// attempt, and returns the acknowledged ids and the failed count.
func (s *eventStream) wait() (map[string]bool, int) {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked, s.failed
}
