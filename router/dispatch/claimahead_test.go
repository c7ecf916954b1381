package dispatch_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
)

// gateSink counts attempts in flight and, while gate is set, holds each
// attempt until the test lets it go.
type gateSink struct {
	mu        sync.Mutex
	delivered map[string]int
	inFlight  int
	maxFlight int
	entered   chan string
	gate      chan struct{} // nil: no waiting
}

func (s *gateSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	s.mu.Lock()
	s.inFlight++
	s.maxFlight = max(s.maxFlight, s.inFlight)
	gate := s.gate
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.delivered[d.ID]++
		s.mu.Unlock()
	}()
	if s.entered != nil {
		s.entered <- d.ID
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return router.Result{}, ctx.Err()
		}
	} else {
		time.Sleep(time.Millisecond)
	}
	return router.Result{StatusCode: 200}, nil
}

func (s *gateSink) counts() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.delivered))
	for k, v := range s.delivered {
		out[k] = v
	}
	return out, s.maxFlight
}

type gateFactory struct{ sink *gateSink }

func (f gateFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	return f.sink, nil
}
func (f gateFactory) RouteFields(kind string) ([]router.FieldSpec, bool) { return nil, kind == "gate" }

// claimLog records what the workers asked of the store.
type claimLog struct {
	router.Store
	mu         sync.Mutex
	asked      []int // max of every Claim
	postponed  []string
	until      []time.Time // of every Postpone
	claimedAll atomic.Int64
}

func (s *claimLog) Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, max int) ([]*router.Claimed, error) {
	cs, err := s.Store.Claim(ctx, sink, owner, now, lease, max)
	s.mu.Lock()
	s.asked = append(s.asked, max)
	s.mu.Unlock()
	s.claimedAll.Add(int64(len(cs)))
	return cs, err
}

func (s *claimLog) Postpone(ctx context.Context, id, owner string, until time.Time, why string) error {
	s.mu.Lock()
	s.postponed = append(s.postponed, id)
	s.until = append(s.until, until)
	s.mu.Unlock()
	return s.Store.Postpone(ctx, id, owner, until, why)
}

func (s *claimLog) snapshot() (asked []int, postponed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.asked...), append([]string(nil), s.postponed...)
}

// setupAhead loads one gate sink with the given concurrency, ingests n
// events (a backlog) and returns the router, not yet running.
func setupAhead(t *testing.T, concurrency, n int, sink *gateSink, now func() time.Time) (*dispatch.Router, *claimLog) {
	t.Helper()
	conf := fmt.Sprintf(`
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: g, type: gate, concurrency: %d}
rules:
  - {name: all, when: "true", to: [{sink: g}]}
`, concurrency)
	rt, st := loadWithStore(t, conf, gateFactory{sink}, pubEnv)
	log := &claimLog{Store: st}
	r := dispatch.New(rt, log, dispatch.Options{PollInterval: 20 * time.Millisecond, Now: now})
	for i := range n {
		if w := post(t, r.IngestHandler(), event(fmt.Sprint(i), "sad")); w.Code != 202 {
			t.Fatalf("ingest %d: %d %s", i, w.Code, w.Body)
		}
	}
	return r, log
}

func runRouter(t *testing.T, r *dispatch.Router) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// TestClaimAhead: under a backlog the workers claim a round ahead of their
// free slots, yet never have more than Concurrency attempts in flight, and
// every delivery goes out once.
func TestClaimAhead(t *testing.T) {
	sink := &gateSink{delivered: map[string]int{}}
	r, log := setupAhead(t, 2, 60, sink, nil)
	runRouter(t, r)
	waitFor(t, "60 deliveries", func() bool { got, _ := sink.counts(); return len(got) == 60 })
	time.Sleep(50 * time.Millisecond) // a duplicate would show now
	got, maxFlight := sink.counts()
	for id, n := range got {
		if n != 1 {
			t.Errorf("delivery %s sent %d times", id, n)
		}
	}
	if maxFlight > 2 {
		t.Errorf("%d attempts in flight at once, concurrency is 2", maxFlight)
	}
	asked, _ := log.snapshot()
	ahead := 0
	for _, n := range asked {
		if n > 2 {
			ahead++
		}
	}
	if ahead == 0 {
		t.Errorf("no claim asked for more than the 2 slots under a backlog (asked %v)", asked)
	}
	if c := log.claimedAll.Load(); c != 60 {
		t.Errorf("%d deliveries claimed in all, want 60 (each once)", c)
	}
}

// TestClaimAheadHandedBack: deliveries claimed ahead go back to the store,
// claimable at once and at their old place in the queue, when the pool
// stops, and when their lease has run too short to attempt them; none is
// sent twice.
func TestClaimAheadHandedBack(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	gate := make(chan struct{})
	sink := &gateSink{delivered: map[string]int{}, entered: make(chan string, 100)}
	r, log := setupAhead(t, 1, 6, sink, now)
	ingested := now()
	stop := runRouter(t, r)

	// The first claim (no backlog known yet) takes one; the next, with a
	// backlog, takes one for the slot and one ahead.
	<-sink.entered
	sink.mu.Lock()
	sink.gate = gate
	sink.mu.Unlock()
	<-sink.entered // the second attempt, held at the gate: one is ahead now
	waitFor(t, "a claim ahead", func() bool {
		asked, _ := log.snapshot()
		return len(asked) >= 2 && asked[len(asked)-1] == 2
	})

	// Its lease runs short while it waits: it is handed back, not sent.
	clock.Add(int64(12 * time.Second)) // lease 2×5s+10s, 8s left < 5s timeout + 5s
	gate <- struct{}{}
	waitFor(t, "the short lease handed back", func() bool { _, p := log.snapshot(); return len(p) >= 1 })

	// Then stop with one ahead again: it is handed back too.
	<-sink.entered
	waitFor(t, "another claim ahead", func() bool {
		asked, _ := log.snapshot()
		return asked[len(asked)-1] == 2
	})
	_, before := log.snapshot()
	go func() { time.Sleep(50 * time.Millisecond); close(gate) }()
	stop()
	_, after := log.snapshot()
	if len(after) <= len(before) {
		t.Errorf("stopping handed back nothing (postponed %v)", after)
	}
	// Both were due since the ingest, 12 s of clock ago: handed back due
	// then, not now, they stay ahead of anything that fell due since.
	log.mu.Lock()
	for i, u := range log.until {
		if u.After(ingested) {
			t.Errorf("delivery %s handed back due %v, after it was first due (%v)", log.postponed[i], u, ingested)
		}
	}
	log.mu.Unlock()

	got, _ := sink.counts()
	for id, n := range got {
		if n != 1 {
			t.Errorf("delivery %s sent %d times", id, n)
		}
	}
	// What was not sent is claimable by anyone now, not leased for 20 s.
	left, err := log.Store.Claim(context.Background(), "g", "other", now(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(left)+len(got) != 6 {
		t.Errorf("%d sent and %d claimable, want 6 in all", len(got), len(left))
	}
	for _, c := range left {
		if got[c.ID] != 0 {
			t.Errorf("delivery %s was sent and is pending again", c.ID)
		}
	}
}
