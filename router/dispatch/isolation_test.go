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

// hangSink holds every attempt until released (or its timeout).
type hangSink struct {
	release  chan struct{}
	inFlight atomic.Int64
}

func (s *hangSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	select {
	case <-s.release:
		return router.Result{StatusCode: 200}, nil
	case <-ctx.Done():
		return router.Result{}, ctx.Err()
	}
}

// isolationFactory builds "hang" and "count" sinks.
type isolationFactory struct {
	hang  *hangSink
	count *countingSink
}

func (f isolationFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	if kind == "hang" {
		return f.hang, nil
	}
	return f.count, nil
}

func (f isolationFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	return nil, kind == "hang" || kind == "count"
}

// TestHangingSinkDoesNotHoldOthers is docs/reliability.md's R-08: one sink hangs
// (every attempt waits out its timeout) while another is healthy; the
// healthy one delivers everything while the hanging one's first attempts
// are still in flight. Each sink has its own workers: nothing is shared
// that one sink's slowness could fill.
func TestHangingSinkDoesNotHoldOthers(t *testing.T) {
	f := isolationFactory{hang: &hangSink{release: make(chan struct{})}, count: &countingSink{}}
	conf := `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: stuck, type: hang, timeout: 1m}
  - {name: fine, type: count}
rules:
  - {name: all, when: "true", to: [{sink: stuck}, {sink: fine}]}
`
	rt, st := loadWithStore(t, conf, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	var once sync.Once
	unblock := func() { once.Do(func() { close(f.hang.release) }) }
	runRouter(t, r)
	t.Cleanup(unblock) // before the router stops, which waits for attempts in flight
	const n = 40
	for i := range n {
		if w := post(t, r.IngestHandler(), event(fmt.Sprint("iso", i), "sad")); w.Code != 202 {
			t.Fatalf("ingest %d: %d %s", i, w.Code, w.Body)
		}
	}
	waitFor(t, "the healthy sink to get every delivery", func() bool { return len(f.count.delivered()) == n })
	if got := f.hang.inFlight.Load(); got < 1 || got > 4 {
		t.Errorf("%d attempts in flight at the hanging sink, want 1 to its concurrency (4), still waiting", got)
	}
	unblock()
}
