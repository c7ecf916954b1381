package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// Operations: pausing failing sinks, retention, reload.

// sinkStateRefresh is how often a replica re-reads which sinks are paused
// (another replica, or an operator, may have changed it).
const sinkStateRefresh = 2 * time.Second

// sinkStates caches the store's sink states.
type sinkStates struct {
	mu sync.RWMutex
	m  map[string]router.SinkState
}

func (r *Router) sinkPaused(sink string) bool {
	r.states.mu.RLock()
	defer r.states.mu.RUnlock()
	return r.states.m[sink].Paused
}

// sinkHeldUntil is the sink's hold as last read from the store (set by
// any replica's HoldSink).
func (r *Router) sinkHeldUntil(sink string) time.Time {
	r.states.mu.RLock()
	defer r.states.mu.RUnlock()
	return r.states.m[sink].HeldUntil
}

func (r *Router) refreshSinkStates(ctx context.Context) {
	m, err := r.store.SinkStates(ctx)
	if err != nil {
		r.logs.Log(r.log, r.now(), slog.LevelError, "sink-states", "read sink states", "err", err)
		return
	}
	r.states.mu.Lock()
	r.states.m = m
	r.states.mu.Unlock()
}

// setPaused records a sink's pause state in the store and in the cache.
func (r *Router) setPaused(sink string, paused bool, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := r.now()
	if err := r.store.SetSinkPaused(ctx, sink, paused, reason, now); err != nil {
		return err
	}
	r.states.mu.Lock()
	if r.states.m == nil {
		r.states.m = map[string]router.SinkState{}
	}
	r.states.m[sink] = router.SinkState{Paused: paused, Reason: reason, Since: now, HeldUntil: r.states.m[sink].HeldUntil}
	r.states.mu.Unlock()
	return nil
}

// trackHealth counts a sink's consecutive failed attempts: past its
// pause_after the sink is paused; a success while paused resumes it.
// Permanent errors count too: a sink that rejects everything is as down as
// one that answers nothing.
func (r *Router) trackHealth(sr *rules.SinkRuntime, sink string, err error, paused bool) {
	p := r.pools.get(sink)
	if p == nil {
		return
	}
	if err == nil {
		p.failing.Store(0)
		if paused {
			if err := r.setPaused(sink, false, "delivered again"); err != nil {
				r.logs.Log(r.log, r.now(), slog.LevelError, "resume-sink:"+sink, "resume sink", "sink", sink, "err", err)
				return
			}
			r.log.Info("sink resumed: a delivery succeeded", "sink", sink)
			// The pool waits out its probe interval while paused: end the
			// wait, or the backlog would sit until the next new event.
			p.wake()
		}
		return
	}
	n := p.failing.Add(1)
	if sr.PauseAfter > 0 && n == int64(sr.PauseAfter) && !paused {
		reason := fmt.Sprintf("%d attempts in a row failed", n)
		if err := r.setPaused(sink, true, reason); err != nil {
			r.logs.Log(r.log, r.now(), slog.LevelError, "pause-sink:"+sink, "pause sink", "sink", sink, "err", err)
			return
		}
		r.log.Warn("sink paused: its deliveries wait (nothing is dropped) until it succeeds again or an operator resumes it",
			"sink", sink, "reason", reason, "probe_every", sr.PauseProbe.String())
	}
}

// pruneBatch bounds each delete, so that pruning never holds the store
// for long and its memory stays flat whatever the table size.
const pruneBatch = 1000

// PruneOnce deletes history older than the retention, in small batches,
// and returns the number of rows deleted.
func (r *Router) PruneOnce(ctx context.Context) int {
	ret := time.Duration(r.rt.Load().Config.Store.Retention)
	before := r.now().Add(-ret)
	total := 0
	for ctx.Err() == nil {
		n, err := r.store.Prune(ctx, before, pruneBatch)
		total += n
		if err != nil {
			r.logs.Log(r.log, r.now(), slog.LevelError, "prune", "retention: prune", "err", err)
			break
		}
		if n < pruneBatch {
			break
		}
		time.Sleep(10 * time.Millisecond) // let ingest in between batches
	}
	if total > 0 {
		r.log.Info("retention: pruned", "rows", total, "older_than", before.UTC().Format(time.RFC3339))
	}
	return total
}

// Reload loads the config again through the Options.Reload function and,
// if it is valid in full, swaps it in atomically; an invalid one is
// rejected and the running one kept. Listener addresses and the store are
// read at start only: a change there needs a restart, and is logged.
func (r *Router) Reload() error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if r.reload == nil {
		return errors.New("reload is not available")
	}
	rt, err := r.reload()
	if err != nil {
		r.metrics.reloaded("failure")
		r.log.Error("config reload rejected; the running config stays", "err", err)
		return err
	}
	old := r.rt.Load()
	if old.Config.Server.Listen != rt.Config.Server.Listen || old.Config.Server.AdminListen != rt.Config.Server.AdminListen || old.Config.Store.URL != rt.Config.Store.URL {
		r.log.Warn("config reload: listener and store changes take effect at the next restart")
	}
	r.retire(old, rt)
	r.rt.Store(rt)
	r.views.clear()
	r.pools.apply(rt)
	r.metrics.reloaded("success")
	r.log.Info("config reloaded", "sources", len(rt.Sources), "sinks", len(rt.Sinks), "rules", len(rt.Rules))
	return nil
}
