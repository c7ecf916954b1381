package dispatch

import (
	"context"
	"errors"
	"time"

	"github.com/hookroute/hookroute/router"
)

// replayPage is how many deliveries a bulk replay reads at a time.
const replayPage = 1000

// ReplayResult counts what a bulk replay did.
type ReplayResult struct {
	Matched  int `json:"matched"`
	Replayed int `json:"replayed"`
	Busy     int `json:"busy"` // in flight: left alone
}

// ReplayMatching replays up to max deliveries matching f, spreading their
// due times at rate per second from now so that live deliveries, due now,
// are claimed first.
func (r *Router) ReplayMatching(ctx context.Context, f router.DeliveryFilter, max int, rate float64, by string, dryRun bool) (ReplayResult, error) {
	var res ReplayResult
	now := r.now()
	step := time.Duration(float64(time.Second) / rate)
	var ids []string
	sinks := map[string]bool{}
	for len(ids) < max {
		f.Limit = min(replayPage, max-len(ids))
		page, err := r.store.ListDeliveries(ctx, f)
		if err != nil {
			return res, err
		}
		for _, d := range page {
			ids = append(ids, d.ID)
			sinks[d.Sink] = true
		}
		if len(page) < f.Limit {
			break
		}
		last := page[len(page)-1]
		f.After = &router.Cursor{At: last.CreatedAt, ID: last.ID}
	}
	res.Matched = len(ids)
	if dryRun {
		return res, nil
	}
	// Oldest first: they waited longest.
	for i := len(ids) - 1; i >= 0; i-- {
		err := r.store.Replay(ctx, ids[i], by, now.Add(time.Duration(res.Replayed)*step))
		switch {
		case errors.Is(err, router.ErrBusy):
			res.Busy++
		case errors.Is(err, router.ErrNotFound):
		case err != nil:
			return res, err
		default:
			res.Replayed++
		}
	}
	r.log.Info("bulk replay", "by", by, "matched", res.Matched, "replayed", res.Replayed, "busy", res.Busy)
	r.metrics.replayed(res.Replayed)
	for s := range sinks {
		if p := r.pools.get(s); p != nil {
			p.wake()
		}
	}
	return res, nil
}
