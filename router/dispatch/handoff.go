package dispatch

import (
	"context"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// Direct handoff. A delivery that its sink's pool can send at once is
// leased to this process in the same transaction that stores it, and
// handed to the pool in memory once that commits: no claim to write, no
// event to read back. The store still holds it, leased like a claimed
// one, so another replica leaves it alone and, if this process dies, it
// is due again when the lease runs out, exactly as after a crash
// mid-attempt.
//
// A pool takes handoffs only while it keeps up: nothing it claimed came
// back full (s.backlog), and it is not paused, held, paced or waiting for
// a signing key; and only while ingest is not saturated, when deliveries
// yield to acknowledgements (see ingestYieldMax) and a handoff would jump
// that queue. Otherwise deliveries go to the store unleased and are
// claimed in due order as before. While handoffs flow, the pool still
// claims every handoffClaimEvery, so that what waits in the store (retries
// falling due, deliveries that found the hand full) is never starved by
// newer ones.

// handoffClaimEvery bounds how long a pool busy with handoffs goes
// without looking at the store.
const handoffClaimEvery = 100 * time.Millisecond

// handoffCap is how many deliveries a pool holds handed off and not yet
// sent: enough for a group commit's worth of events at once, few enough
// that none waits long for a slot (their leases cover one attempt's wait,
// which sendAhead checks).
func handoffCap(concurrency int) int { return max(64, 16*concurrency) }

// handoffLease is the lease a delivery handed off gets at insert: an
// attempt's, plus an attempt's wait for a slot, as a claim ahead gets.
func handoffLease(sr *rules.SinkRuntime) time.Duration { return 2*sr.Timeout + leaseMargin }

// reserveHandoff promises a place in the pool's hand to a delivery about
// to be stored, or says no.
func (p *pool) reserveHandoff() bool {
	if !p.handoffOK.Load() || p.ps.r.ingestSaturated() {
		return false
	}
	if p.handing.Add(1) > int64(cap(p.handoff)) {
		p.handing.Add(-1)
		return false
	}
	return true
}

// handoffs are the deliveries of one ingest that were promised a place in
// their pools, by index in its deliveries.
type handoffs struct {
	idx   []int
	pools []*pool
}

// offerHandoffs leases to this process the deliveries whose pools take
// them, before the ingest stores them.
func (r *Router) offerHandoffs(rt *rules.Runtime, ds []router.NewDelivery, now time.Time) handoffs {
	var h handoffs
	for i := range ds {
		p := r.pools.get(ds[i].Sink)
		sr := rt.Sinks[ds[i].Sink]
		if p == nil || sr == nil || ds[i].TimerKey != "" || !p.reserveHandoff() {
			continue // a timer's delivery is not due: it waits in the store
		}
		ds[i].LeaseOwner, ds[i].LeaseUntil = r.owner, now.Add(handoffLease(sr))
		h.idx = append(h.idx, i)
		h.pools = append(h.pools, p)
	}
	return h
}

// hand gives the pools the deliveries promised to them, once the ingest
// committed them; the ingest's wakeSinks, which follows, wakes them.
func (h handoffs) hand(ev *router.EventRecord, ds []router.NewDelivery) {
	for j, i := range h.idx {
		d := ds[i]
		c := &router.Claimed{ID: d.ID, Rule: d.Rule, Route: d.Route, Sink: d.Sink, Due: d.NextAttemptAt, Event: ev}
		h.pools[j].handoff <- aheadClaim{c: c, until: d.LeaseUntil}
	}
}

// cancel gives back the places promised, for an ingest that stored no
// delivery (a duplicate, or a failed commit).
func (h handoffs) cancel() {
	for _, p := range h.pools {
		p.handing.Add(-1)
	}
}

// takeHandoffs moves what was handed to the pool among the deliveries it
// holds ahead, to send as slots free up.
func (p *pool) takeHandoffs(s *runState) {
	for {
		select {
		case a := <-p.handoff:
			p.handing.Add(-1)
			s.ahead = append(s.ahead, a)
		default:
			return
		}
	}
}

// mayTakeHandoffs records, for the ingest, whether the pool takes
// handoffs now.
func (p *pool) mayTakeHandoffs(s *runState, ok bool) {
	p.handoffOK.Store(ok && !s.backlog && s.failures == 0)
}

// claimDue reports whether a pool that has deliveries to send ahead
// should look at the store first: it has not for handoffClaimEvery.
func (p *pool) claimDue(s *runState) bool {
	return time.Since(s.lastClaim) >= handoffClaimEvery
}

// awaitHandoff waits, while handoffs flow and nothing is in hand, for the
// next one (an ingest wakes the pool) or until the store is due a look:
// a claim or a look for the next due time at every turn would cost a
// store query per delivery, the cost handoffs are there to save.
func (p *pool) awaitHandoff(ctx context.Context, s *runState) {
	p.sleep(ctx, handoffClaimEvery-time.Since(s.lastClaim))
}
