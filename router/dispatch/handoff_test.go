package dispatch_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
)

// claimCountingStore counts the deliveries Claim hands out.
type claimCountingStore struct {
	router.Store
	mu      sync.Mutex
	claimed map[string]int
}

func (s *claimCountingStore) Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, max int) ([]*router.Claimed, error) {
	cs, err := s.Store.Claim(ctx, sink, owner, now, lease, max)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		s.claimed[c.ID]++
	}
	return cs, err
}

func (s *claimCountingStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.claimed)
}

// TestDeliveriesHandedOffWithoutClaims: once a sink's pool runs and keeps
// up, the deliveries of new events reach it in memory, leased at insert,
// and none is claimed from the store; each is delivered once, and its
// delivery record ends delivered, as a claimed one does.
func TestDeliveriesHandedOffWithoutClaims(t *testing.T) {
	f := &countingFactory{}
	rt, st := loadWithStore(t, routerConfig, f, pubEnv)
	cs := &claimCountingStore{Store: st, claimed: map[string]int{}}
	r := dispatch.New(rt, cs, dispatch.Options{PollInterval: 50 * time.Millisecond})
	runRouter(t, r)
	h := r.IngestHandler()

	// The first event may find the pools not yet running: it is claimed.
	if w := post(t, h, event("warm", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	waitFor(t, "the first deliveries", func() bool { return len(f.sinks["a"].delivered()) == 1 && len(f.sinks["b"].delivered()) == 2 })
	before := cs.count()

	const n = 20 // b gets 2n: under its pool's hand of 64, so that none has to wait in the store
	for i := range n {
		if w := post(t, h, event(fmt.Sprint("h", i), "sad")); w.Code != 202 {
			t.Fatalf("ingest: %d %s", w.Code, w.Body)
		}
	}
	// Each sad event makes one delivery to a and two to b.
	waitFor(t, "every delivery", func() bool { return len(f.sinks["a"].delivered()) == n+1 && len(f.sinks["b"].delivered()) == 2*n+2 })
	if got := cs.count() - before; got != 0 {
		t.Errorf("%d of the %d deliveries were claimed from the store, want all handed off", got, 3*n)
	}
	ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "a", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Status != router.StatusDelivered || d.Attempts != 1 {
			t.Errorf("delivery %s: %s after %d attempts, want delivered after 1", d.ID, d.Status, d.Attempts)
		}
	}
}
