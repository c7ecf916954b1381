package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
)

// lineLog is a slog.Handler that records when each line was written.
type lineLog struct {
	mu    sync.Mutex
	at    []time.Time
	count map[string]int // per message
}

func (h *lineLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lineLog) WithGroup(string) slog.Handler            { return h }

func (h *lineLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.at = append(h.at, time.Now())
	if h.count == nil {
		h.count = map[string]int{}
	}
	h.count[r.Message]++
	return nil
}

// busiestSecond returns the most lines written within any one second.
func (h *lineLog) busiestSecond() int {
	h.mu.Lock()
	at := append([]time.Time(nil), h.at...)
	h.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	most := 0
	for i, j := 0, 0; j < len(at); j++ {
		for at[j].Sub(at[i]) > time.Second {
			i++
		}
		most = max(most, j-i+1)
	}
	return most
}

var errDiskFull = errors.New("database or disk is full")

// fullDiskStore stands for a store on a full disk once broken: every
// write the router makes per request or per delivery fails. Claims still
// work, so that the workers meet the failures delivery after delivery.
type fullDiskStore struct {
	router.Store
	broken   atomic.Bool
	acquires atomic.Int64
}

func (s *fullDiskStore) Ingest(ctx context.Context, ev *router.EventRecord, ds []router.NewDelivery) (bool, error) {
	if s.broken.Load() {
		return false, errDiskFull
	}
	return s.Store.Ingest(ctx, ev, ds)
}

func (s *fullDiskStore) AcquireKey(ctx context.Context, sink, key, owner string, now time.Time, lease time.Duration) (router.RemoteObject, bool, error) {
	if s.broken.Load() {
		s.acquires.Add(1)
		return router.RemoteObject{}, false, errDiskFull
	}
	return s.Store.AcquireKey(ctx, sink, key, owner, now, lease)
}

func (s *fullDiskStore) Postpone(ctx context.Context, id, owner string, until time.Time, why string) error {
	if s.broken.Load() {
		return errDiskFull
	}
	return s.Store.Postpone(ctx, id, owner, until, why)
}

// Finish answers as a store does to a worker whose lease another took:
// a line per delivery, at once (a failing Finish retries for seconds).
func (s *fullDiskStore) Finish(ctx context.Context, id, owner string, f router.Finish) error {
	if s.broken.Load() {
		return router.ErrLeaseLost
	}
	return s.Store.Finish(ctx, id, owner, f)
}

// TestRepeatedStoreErrorsAreRateLimited: with the store failing every
// write, 500 webhooks and 600 deliveries meet an error each, and the log
// gets a bounded number of lines a second: each kind of failure its burst
// of 10, then one a second (README, Logs). A sink whose every error text
// differs (a request id in each answer) is summarised as well.
func TestRepeatedStoreErrorsAreRateLimited(t *testing.T) {
	const conf = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: a, type: count}
  - {name: b, type: count}
  - {name: c, type: count, retry: {max_attempts: 5}, pause_after: 0}   # 0: never paused
rules:
  - name: all
    when: "true"
    to: [{sink: a, dedup_key: "k-{{ .entity_id }}"}, {sink: b}, {sink: c}]
`
	const seeded, requests = 200, 500
	f := &countingFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	lines := &lineLog{}
	fs := &fullDiskStore{Store: st}
	r := dispatch.New(rt, fs, dispatch.Options{Logger: slog.New(lines), PollInterval: 50 * time.Millisecond})
	h := r.IngestHandler()
	for i := range seeded {
		if w := post(t, h, event(fmt.Sprintf("seed-%d", i), "sad")); w.Code != 202 {
			t.Fatalf("seed %d: %d %s", i, w.Code, w.Body)
		}
	}
	var failed atomic.Int64
	f.sinks["c"].fail = func(int) error { return fmt.Errorf("503 Service Unavailable: request id %d", failed.Add(1)) }

	fs.broken.Store(true)
	runRouter(t, r)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < requests; i += 8 {
				if w := post(t, h, event(fmt.Sprintf("full-%d", i), "sad")); w.Code == 503 {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every seeded delivery attempted", func() bool {
		return fs.acquires.Load() >= seeded && len(f.sinks["b"].delivered()) >= seeded && failed.Load() >= seeded
	})
	if n := refused.Load(); n != requests {
		t.Fatalf("%d of %d webhooks refused, want all", n, requests)
	}
	lines.mu.Lock()
	total, counts := len(lines.at), fmt.Sprint(lines.count)
	lines.mu.Unlock()
	// Kinds of failure here: ingest-store, acquire-key and postpone on a,
	// lease lost on b and c, and delivery failed on c; each at
	// most its burst and one more a second in any one second.
	const kinds, perKind = 6, 10 + 2
	most := lines.busiestSecond()
	t.Logf("%d errors met, %d log lines, at most %d in one second: %s", requests+4*seeded, total, most, counts)
	if most > kinds*perKind {
		t.Errorf("%d log lines in one second, want at most %d: %s", most, kinds*perKind, counts)
	}
}
