package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/hookroute/hookroute/internal/randomid"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/source"
)

type atomicRuntime struct{ p atomic.Pointer[rules.Runtime] }

func (a *atomicRuntime) Load() *rules.Runtime    { return a.p.Load() }
func (a *atomicRuntime) Store(rt *rules.Runtime) { a.p.Store(rt) }

func defaultOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), randomid.New(5))
}

// leaseMargin is added to the attempt timeout to form the lease, so that a
// lease never runs out while its attempt can still be running.
const leaseMargin = 10 * time.Second

// pools holds one worker pool per sink.
type pools struct {
	r    *Router
	poll time.Duration
	mu   sync.Mutex
	m    map[string]*pool
	base context.Context // Run's; nil before Run
	wg   sync.WaitGroup
}

func newPools(r *Router, poll time.Duration) *pools {
	return &pools{r: r, poll: poll, m: map[string]*pool{}}
}

func (ps *pools) get(sink string) *pool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.m[sink]
}

// pool claims and delivers the deliveries of one sink, with at most
// Concurrency attempts in flight.
type pool struct {
	ps    *pools
	sink  string
	wakeC chan struct{}
	slots chan struct{} // one token per attempt in flight
	// recording holds one token per attempt whose request is over and
	// whose outcome is being written (see release).
	recording chan struct{}
	cancel    context.CancelFunc
	// failing counts consecutive failed attempts, for pausing.
	failing atomic.Int64
	// behind is how long the oldest delivery of the last claim that got
	// any had been due (see maxYieldLag); run's goroutine only.
	behind time.Duration
	// pressure adapts sending to a receiver that pushes back.
	pressure *pressure
	// handoff brings the deliveries leased at ingest (handoff.go);
	// handing counts the places promised in it, and handoffOK says
	// whether the pool takes more.
	handoff   chan aheadClaim
	handing   atomic.Int64
	handoffOK atomic.Bool
}

func (p *pool) wake() {
	select {
	case p.wakeC <- struct{}{}:
	default:
	}
}

// apply makes the pools match rt: a pool for every enabled sink, stopped
// for sinks that went away or were switched off, restarted where the
// concurrency changed. A sink whose settings changed otherwise keeps its
// pool, which reads the new settings at its next claim. Stopping a pool
// stops its claiming only: attempts in flight finish on their own
// timeouts, so a reload neither cancels nor repeats a delivery.
func (ps *pools) apply(rt *rules.Runtime) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.base == nil {
		return
	}
	for name, p := range ps.m {
		sr := rt.Sinks[name]
		if sr == nil || sr.Disabled || sr.Sink == nil || cap(p.slots) != sr.Concurrency {
			p.cancel()
			delete(ps.m, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rt.Sinks)) {
		sr := rt.Sinks[name]
		if _, ok := ps.m[name]; ok || sr.Disabled || sr.Sink == nil {
			continue
		}
		ctx, cancel := context.WithCancel(ps.base)
		p := &pool{ps: ps, sink: name, wakeC: make(chan struct{}, 1), slots: make(chan struct{}, sr.Concurrency),
			recording: make(chan struct{}, 2*sr.Concurrency), cancel: cancel, pressure: newPressure(sr.Concurrency),
			handoff: make(chan aheadClaim, handoffCap(sr.Concurrency))}
		ps.m[name] = p
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			defer cancel()
			p.run(ctx)
		}()
	}
}

// Run starts a worker pool per enabled sink, the pruner and the store's
// notifications, and blocks until ctx is done. Then it stops claiming and
// waits for the attempts in flight: they run on their own timeouts, not on
// ctx, so a shutdown finishes them rather than cutting them off (a cut-off
// attempt might have been delivered and would be sent again).
func (r *Router) Run(ctx context.Context) {
	ps := r.pools
	ps.mu.Lock()
	ps.base = ctx
	ps.mu.Unlock()
	r.refreshSinkStates(ctx)
	ps.apply(r.rt.Load())
	r.background(ctx, "sink states", sinkStateRefresh, r.refreshSinkStates)
	r.background(ctx, "pruner", r.pruneEvery, func(ctx context.Context) { r.PruneOnce(ctx) })
	r.background(ctx, "timers", fireEvery, r.fireTimers)
	if n, ok := r.store.(router.Notifier); ok {
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			if err := n.Listen(ctx, func(sink string) {
				if p := ps.get(sink); p != nil {
					p.wake()
				}
			}); err != nil && ctx.Err() == nil {
				r.log.Error("store notifications stopped; workers fall back to polling", "err", err)
			}
		}()
	}
	<-ctx.Done()
	ps.wg.Wait()
}

// background runs fn every interval until ctx is done.
func (r *Router) background(ctx context.Context, name string, every time.Duration, fn func(context.Context)) {
	if every <= 0 {
		return
	}
	r.pools.wg.Add(1)
	go func() {
		defer r.pools.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	}()
}

// runState is what one pool's loop carries from turn to turn.
type runState struct {
	inflight sync.WaitGroup
	// ahead are deliveries claimed ahead, waiting for a slot; handed back
	// to the store when the pool stops or may not send them now.
	ahead    []aheadClaim
	failures int  // claims failed in a row
	backlog  bool // the last claim got all it asked for: more may wait
	// fresh: nothing claimed yet. A sink found paused at start (the pause
	// is kept in the store, across a restart) is probed at once, not a
	// whole PauseProbe after a crash or deploy that may have ended the
	// outage.
	fresh   bool
	yielded bool // the last turn held back for the ingest: this one claims
	// lastClaim is when the pool last looked at the store (claimDue).
	lastClaim time.Time
}

// run claims and sends the sink's deliveries until ctx is done or the sink
// leaves the config. Each turn: take what was handed off; wait while the
// sink may not be sent to (no signing key, a receiver's hold); take a
// slot; then send one held ahead (claimed ahead or handed off), or wait
// for the next handoff while they flow and the store is not due a look,
// or hold back for a saturated ingest, or claim.
func (p *pool) run(ctx context.Context) {
	r := p.ps.r
	s := &runState{fresh: true}
	defer s.inflight.Wait()
	defer func() {
		// A handoff that comes later waits for its lease to run out.
		p.handoffOK.Store(false)
		p.takeHandoffs(s)
		p.giveBack(s.ahead)
	}()
	for ctx.Err() == nil {
		rt := r.rt.Load()
		sr := rt.Sinks[p.sink]
		if sr == nil || sr.Sink == nil {
			return
		}
		p.takeHandoffs(s)
		if p.blocked(ctx, s, sr) {
			p.mayTakeHandoffs(s, false)
			continue
		}
		// Take a slot first: never claim more than can be sent at once,
		// but for the round claimed ahead.
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		paced, ok := p.admit(sr)
		p.mayTakeHandoffs(s, ok && !paced && !r.sinkPaused(p.sink))
		switch {
		case !ok:
			<-p.slots
			p.sleep(ctx, windowPoll)
		case len(s.ahead) > 0 && (s.backlog || !p.claimDue(s)):
			p.sendAhead(s, rt, sr, paced)
		case len(s.ahead) == 0 && p.handoffOK.Load() && !p.claimDue(s):
			<-p.slots
			p.awaitHandoff(ctx, s)
		case p.yieldFirst(ctx, s, paced):
			<-p.slots
		default:
			if !p.claim(ctx, s, rt, sr, paced) {
				return
			}
		}
	}
}

// blocked waits, holding no slot, while the sink may not be sent to: a
// secured sink without a key (creating one wakes the pool), or a
// receiver's Retry-After hold. What was claimed ahead goes back to the
// store meanwhile. It reports whether it waited.
func (p *pool) blocked(ctx context.Context, s *runState, sr *rules.SinkRuntime) bool {
	r := p.ps.r
	unsigned := router.IsSecured(sr.Sink) && r.keys.waiting(p.sink)
	held := time.Duration(0)
	if !unsigned {
		held = p.heldUntil().Sub(r.now())
	}
	if !unsigned && held <= 0 {
		return false
	}
	p.giveBack(s.ahead)
	s.ahead = nil
	if unsigned {
		p.sleep(ctx, unsignedWait)
	} else {
		p.sleepUntil(ctx, held)
	}
	return true
}

// admit decides, holding a slot, whether this turn may send: a receiver
// that pushed back gets one delivery per claim, at the adaptive rate,
// within the adaptive window. paced reports one-at-a-time sending (the
// sink's own pacing, or adaptive sending); ok is false when the window is
// full.
func (p *pool) admit(sr *rules.SinkRuntime) (paced, ok bool) {
	adaptive := p.pressure.settle(p.ps.r.now())
	if adaptive && !p.pressure.admits(len(p.slots)-1) {
		return false, false
	}
	_, paced = sr.Sink.(router.Paced)
	return paced || adaptive, true
}

// sendAhead starts the oldest delivery claimed ahead on the slot held, or
// hands it back (and the slot) when the sink became paused or paced since
// the claim, or its lease is too short to attempt and record it.
func (p *pool) sendAhead(s *runState, rt *rules.Runtime, sr *rules.SinkRuntime, paced bool) {
	r := p.ps.r
	if paced || r.sinkPaused(p.sink) {
		p.giveBack(s.ahead)
		s.ahead = nil
		<-p.slots
		return
	}
	a := s.ahead[0]
	s.ahead = s.ahead[1:]
	if a.until.Sub(r.now()) < sr.Timeout+leaseMargin/2 {
		p.giveBack([]aheadClaim{a})
		<-p.slots
		return
	}
	p.start(s, rt, sr, a.c)
}

// yieldFirst holds this turn back while ingest is saturated
// (acknowledgements first; see ingestYieldMax), and reports whether it
// did. The next turn claims, whatever the ingest does, from the top,
// which reads the config again (a reload may have come meanwhile).
func (p *pool) yieldFirst(ctx context.Context, s *runState, paced bool) bool {
	r := p.ps.r
	if s.yielded || paced || r.sinkPaused(p.sink) || p.behind >= maxYieldLag || !r.ingestSaturated() {
		s.yielded = false
		return false
	}
	r.metrics.claimDeferred(p.sink)
	p.yieldToIngest(ctx)
	s.yielded = true
	return true
}

// claim waits for the sink's turn (a paused sink's probe interval, or its
// pacing), reserves what slots it can, claims, and starts what it got. It
// returns false when ctx is done.
func (p *pool) claim(ctx context.Context, s *runState, rt *rules.Runtime, sr *rules.SinkRuntime, paced bool) bool {
	r := p.ps.r
	n, claimAhead := 1, false
	switch {
	case r.sinkPaused(p.sink):
		if !p.waitProbe(ctx, s, sr) {
			<-p.slots
			return false
		}
	case paced:
		if err := p.pace(ctx, sr.Sink); err != nil {
			<-p.slots
			return false
		}
	default:
		n += p.reserve(ctx, s.backlog)
		claimAhead = s.backlog
	}
	s.fresh = false
	want, lease := n, sr.Timeout+leaseMargin
	if claimAhead {
		// Under a backlog, claim one round ahead: a claim is a store
		// write, and each one then serves twice the attempts. Those ahead
		// wait for a slot at most about one attempt, which their longer
		// lease covers (and sendAhead checks).
		want += cap(p.slots)
		lease += sr.Timeout
	}
	now := r.now()
	s.lastClaim = time.Now()
	claimed, err := r.store.Claim(ctx, p.sink, r.owner, now, lease, want)
	for i := len(claimed); i < n; i++ {
		<-p.slots
	}
	s.backlog = err == nil && len(claimed) == want
	if err != nil {
		return p.claimFailed(ctx, s, err)
	}
	if s.failures > 0 {
		r.logs.Log(r.log, r.now(), slog.LevelInfo, "claim-again:"+p.sink, "worker: claiming again", "sink", p.sink, "failed_tries", s.failures)
	}
	s.failures = 0
	if len(claimed) > 0 && !claimed[0].Due.IsZero() {
		p.behind = now.Sub(claimed[0].Due) // claims come oldest due first
	}
	for i, c := range claimed {
		if i < n {
			p.start(s, rt, sr, c)
			continue
		}
		s.ahead = append(s.ahead, aheadClaim{c: c, until: now.Add(lease)})
	}
	if len(claimed) == 0 && len(s.ahead) == 0 {
		p.idle(ctx)
	}
	return true
}

// waitProbe spaces a paused sink's probes: one at a time, every
// PauseProbe, while its deliveries wait in the store. Wake-ups from new
// deliveries must not turn its probes into traffic at the ingest rate; a
// resume ends the wait at once. It returns false when ctx is done.
func (p *pool) waitProbe(ctx context.Context, s *runState, sr *rules.SinkRuntime) bool {
	r := p.ps.r
	deadline := time.Now().Add(sr.PauseProbe)
	for !s.fresh && r.sinkPaused(p.sink) && time.Until(deadline) > 0 && ctx.Err() == nil {
		p.sleep(ctx, time.Until(deadline))
	}
	return ctx.Err() == nil
}

// claimFailed backs off while the store is down: no hot loop, and one log
// line per outage rather than per try (and, for a store that fails now
// and then, no more than the limiter allows). The cap keeps recovery
// within seconds of the store's return. It returns false when ctx is
// done.
func (p *pool) claimFailed(ctx context.Context, s *runState, err error) bool {
	r := p.ps.r
	if ctx.Err() != nil {
		return false
	}
	s.failures++
	if s.failures == 1 {
		r.logs.Log(r.log, r.now(), slog.LevelError, "claim:"+p.sink, "worker: claim failed; retrying with backoff", "sink", p.sink, "err", err)
	}
	p.sleep(ctx, min(time.Duration(s.failures)*500*time.Millisecond, 3*time.Second))
	return true
}

// start runs one attempt on the slot held. The slot is freed as soon as
// the request is over (release), before the outcome is written; if the
// attempt ends before that (postponed), the slot is freed when it ends.
func (p *pool) start(s *runState, rt *rules.Runtime, sr *rules.SinkRuntime, c *router.Claimed) {
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		released := false
		defer func() {
			if released {
				p.recorded()
			} else {
				<-p.slots
			}
		}()
		p.ps.r.attempt(rt, sr, p, c, func() { released = true; p.release() })
	}()
}

// windowPoll is how often a pool whose adaptive window is full looks for
// a free place in it.
const windowPoll = 5 * time.Millisecond

// pace waits for the sink's own limiter, if it has one, and for the
// adaptive rate, if it is on.
func (p *pool) pace(ctx context.Context, s router.Sink) error {
	if pc, ok := s.(router.Paced); ok {
		if err := pc.Pace(ctx); err != nil {
			return err
		}
	}
	return p.pressure.wait(ctx)
}

// heldUntil is the end of the sink's hold: this process's own, or one
// another replica recorded in the store. A hold learnt from the store is
// taken as pushback here too: the replicas share the receiver's rate, and
// one that did not slow down would be the next to overshoot it.
func (p *pool) heldUntil() time.Time {
	own, shared := p.pressure.held(), p.ps.r.sinkHeldUntil(p.sink)
	if now := p.ps.r.now(); shared.After(own) && shared.After(now) {
		own = p.pressure.pushedBack(now, shared.Sub(now), true)
	}
	return maxTime(own, shared)
}

// sleepUntil sleeps for d or until ctx is done; wake-ups do not end it.
func (p *pool) sleepUntil(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// aheadClaim is a delivery claimed ahead of a free slot, and when its
// lease ends.
type aheadClaim struct {
	c     *router.Claimed
	until time.Time
}

// giveBack returns deliveries claimed ahead to the store, for this or
// another worker to claim again, at their old place in the queue (due
// when they were due, so not behind those that fell due since); one that
// cannot be given back waits for its lease to run out.
func (p *pool) giveBack(ahead []aheadClaim) {
	if len(ahead) == 0 {
		return
	}
	r := p.ps.r
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range ahead {
		until := r.now()
		if due := a.c.Due; !due.IsZero() && due.Before(until) {
			until = due
		}
		if err := r.store.Postpone(ctx, a.c.ID, r.owner, until, ""); err != nil && !errors.Is(err, router.ErrLeaseLost) {
			r.logs.Log(r.log, r.now(), slog.LevelWarn, "hand-back:"+p.sink, "worker: could not hand back a delivery claimed ahead; it waits for its lease", "sink", p.sink, "delivery_id", a.c.ID, "err", err)
		}
	}
	p.wake()
}

// release frees the slot of an attempt whose request is over. Its outcome
// is then recorded off the slot (see attempt), but only while fewer than
// twice Concurrency outcomes are being recorded: a slow store slows the
// sink's attempts instead of piling up goroutines.
func (p *pool) release() {
	p.recording <- struct{}{}
	<-p.slots
}

// recorded ends what release began.
func (p *pool) recorded() { <-p.recording }

// batchWait bounds how long a worker holding a free slot waits for more
// to free up before it claims: long enough to gather the slots of attempts
// finishing at about the same time, short next to any attempt.
const batchWait = 2 * time.Millisecond

// reserve takes the free slots beyond the one already held and returns how
// many it took. With a backlog in the store it also waits, briefly, until
// half the slots are free: every claim is a store write, and claiming
// deliveries two or more at a time instead of one per finished attempt
// halves that cost when the sink is fast.
func (p *pool) reserve(ctx context.Context, backlog bool) int {
	got := 0
	for got+1 < cap(p.slots) {
		select {
		case p.slots <- struct{}{}:
			got++
			continue
		default:
		}
		break
	}
	want := cap(p.slots) / 2
	if !backlog || got+1 >= want {
		return got
	}
	t := time.NewTimer(batchWait)
	defer t.Stop()
	for got+1 < want {
		select {
		case p.slots <- struct{}{}:
			got++
		case <-t.C:
			return got
		case <-ctx.Done():
			return got
		}
	}
	return got
}

// idle waits until a delivery may be due: woken by an insert, by the next
// scheduled attempt, or by the poll interval (other processes' inserts on
// a shared store, expired leases).
func (p *pool) idle(ctx context.Context) {
	r := p.ps.r
	wait := p.ps.poll
	if next, ok, err := r.store.NextDue(ctx, p.sink); err == nil && ok {
		if d := next.Sub(r.now()); d < wait {
			wait = max(d, time.Millisecond)
		}
	}
	p.sleep(ctx, wait)
}

// Acknowledgements first. While webhook requests queue up (more in flight
// than ingestSaturated allows), the CPU they wait for is shared with the
// deliveries of earlier events, and an acknowledgement that comes too late
// can lose an event, while a delivery that waits loses nothing: it is in
// the store. So a pool defers each claim while ingest is saturated, for at
// most ingestYieldMax (one claim round per sink per ingestYieldMax at
// least), and only while its deliveries are less than maxYieldLag behind.
// That bound is the delivery lag a saturated ingest may cause: beyond it
// deliveries take their share of the CPU again, so that a sustained load
// is delivered at the rate it comes in, with its lag held near the bound,
// instead of piling up behind the acknowledgements and draining only when
// the senders stop. Deliveries already claimed still go out.
const (
	ingestYieldMax  = 250 * time.Millisecond
	ingestYieldPoll = 5 * time.Millisecond
	maxYieldLag     = time.Second
)

// IngestInFlight is the number of webhook requests, read and verified,
// that are being decoded or wait for their commit. Requests still being
// read are not counted: a slow or hostile client is not ingest load.
func (r *Router) IngestInFlight() int { return int(r.ingesting.Load()) }

// ingestSaturated reports whether more webhook requests are in flight than
// SaturatedAbove.
func (r *Router) ingestSaturated() bool {
	return r.ingesting.Load() > r.saturatedAbove
}

// SaturatedAbove is the number of webhook requests in flight above which
// the ingest counts as saturated and deliveries yield to it: four per CPU,
// and at least 16. Fewer is what a sustained load keeps in flight while
// its acknowledgements wait for a group commit (a few milliseconds at a
// few thousand a second), which is no queue; more are senders waiting on
// each other, a burst.
func (r *Router) SaturatedAbove() int { return int(r.saturatedAbove) }

// yieldToIngest waits until ingest is no longer saturated, at most
// ingestYieldMax. Wake-ups from new deliveries do not end the wait: each
// acknowledged event sends one.
func (p *pool) yieldToIngest(ctx context.Context) {
	r := p.ps.r
	deadline := time.Now().Add(ingestYieldMax)
	t := time.NewTicker(ingestYieldPoll)
	defer t.Stop()
	for r.ingestSaturated() && time.Now().Before(deadline) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (p *pool) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.wakeC:
	case <-ctx.Done():
	}
}

// attempt delivers one claimed delivery and records the outcome: prepare
// it (render, sign, lock its dedup key), send it, settle what follows.
//
// requestDone, called once the sink is done with the delivery and before
// its outcome is written, frees the attempt's slot early: the write waits
// for a group commit, and the next attempt need not wait for it.
func (r *Router) attempt(rt *rules.Runtime, sr *rules.SinkRuntime, p *pool, c *router.Claimed, requestDone func()) {
	a, ok := r.prepareDelivery(rt, sr, c)
	if !ok {
		return // postponed: nothing to sign with yet, or its dedup key is busy
	}
	start := r.now()
	var res router.Result
	err := a.err
	switch {
	case err != nil:
	case a.skip:
		res.RemoteID = a.d.RemoteID // nothing to send: see prepared
	default:
		ctx, cancel := context.WithTimeout(context.Background(), sr.Timeout)
		res, err = sr.Sink.Deliver(ctx, a.d)
		cancel()
	}
	r.settle(sr, p, c, a, start, r.now(), res, err, requestDone)
}

// prepared is a claimed delivery ready to send: rendered, signed, its
// dedup key (if any) locked. err is a render failure, which is recorded
// as a permanent one; skip means the remote object exists already and the
// route says not to send (on_existing: skip), or it does not and the
// route only follows up (on_missing: skip).
type prepared struct {
	d    *router.Delivery
	key  string // the dedup key held, "" for none
	skip bool
	err  error
	// cooldown is the route's cooldown this delivery holds (scope and
	// key value), given back if it goes dead.
	cooldown [2]string
}

// prepareDelivery runs a claimed delivery through what may hold it back
// (its route's schedule, a silence, after:, its rule's group, its
// route's cooldown), renders it, signs it for a secured sink and locks
// its dedup key. ok is false when the delivery was put back to wait (a
// closed schedule, pending peers, a group not flushed yet, no key to sign
// with, its dedup key busy) or set aside without an attempt, with nothing
// held but a cooldown it took.
func (r *Router) prepareDelivery(rt *rules.Runtime, sr *rules.SinkRuntime, c *router.Claimed) (a *prepared, ok bool) {
	// A delivery that joined its group passed these checks before it
	// joined: a carrier set aside while it waits would leave its batch
	// open for good, and its members unsent.
	joined, ok := r.joinedGroup(rt, c)
	if !ok || !joined && (r.outsideWindow(rt, c) || r.silenced(rt, c) || r.waitsForPeers(rt, c)) {
		return nil, false
	}
	digest, ok := r.grouped(rt, c)
	if !ok {
		return nil, false
	}
	d, route, held, err := r.buildDelivery(rt, sr.Sink, c, digest)
	a = &prepared{d: d, err: err, cooldown: held}
	if err != nil {
		var lookup *lookupError
		var cooled *cooledError
		switch {
		case errors.As(err, &lookup):
			r.postpone(c, r.now().Add(keyBusyWait), "", err, "lookup:", "delivery: "+lookup.what)
			return nil, false
		case errors.As(err, &cooled):
			r.setAside(c, router.StatusSuppressed, "suppressed by the cooldown of delivery "+cooled.holder+" (cooldown key "+cooled.key+")")
			return nil, false
		}
		return a, true
	}
	if router.IsSecured(sr.Sink) {
		// Before the dedup key is locked: a delivery that cannot be
		// signed waits without holding anything.
		sk, ok := r.signingKey(c)
		if !ok {
			return nil, false
		}
		d.SigningKey = sk
	}
	if d.DedupKey == "" {
		return a, true
	}
	a.key = d.DedupKey
	remote, ok := r.acquireKey(sr, c, a.key)
	if !ok {
		return nil, false
	}
	d.RemoteID, d.RemoteLink = remote.ID, remote.Link
	switch {
	case remote.ID != "" && route.OnExisting == "skip", remote.ID == "" && route.OnMissing == "skip":
		a.skip = true
	case route.OnExisting == "create":
		// A new object every time: to the sink this is a plain delivery
		// (no key to search by, nothing to follow up on); the key then
		// names the newest object.
		d.RemoteID, d.RemoteLink, d.DedupKey = "", nil, ""
	}
	return a, true
}

// Waiting for the deliveries a route's after: names: not less than
// afterMinWait between looks, so that a wait costs a query a quarter
// second at most, nor more than afterMaxWait, so that a retry an operator
// pulls forward (a resume, a replay) is noticed soon.
const (
	afterMinWait = 250 * time.Millisecond
	afterMaxWait = 30 * time.Second
)

// neverOpensWait is how long a delivery waits whose route's schedule
// does not open within the two years a schedule looks ahead (no windows,
// or every day excepted): a reload may give it one.
const neverOpensWait = 24 * time.Hour

// outsideWindow puts the delivery back, without an attempt, while its
// route's schedule keeps it from going (during: closed, outside: open),
// until the schedule lets it; the log says why it waits.
func (r *Router) outsideWindow(rt *rules.Runtime, c *router.Claimed) bool {
	rule, ok := r.ruleFor(rt, c.Rule)
	if !ok || c.Route >= len(rule.Routes) || rule.Routes[c.Route].Window == nil {
		return false
	}
	w, now := rule.Routes[c.Route].Window, r.now()
	if w.Allows(now) {
		return false
	}
	next, why := w.Next(now), "deferred ("+w.Key()+"): "+w.Schedule.Describe(now)
	if next.IsZero() {
		next = now.Add(neverOpensWait)
	}
	if rule.Routes[c.Route].DropClosed {
		r.setAside(c, router.StatusSuppressed, "suppressed ("+w.Key()+", when_closed: drop): "+w.Schedule.Describe(now))
		return true
	}
	r.metrics.outcome(c.Sink, "deferred")
	r.postpone(c, next, why, nil, "", "")
	return true
}

// silenced sets the delivery aside as silenced when an active silence
// selects it.
func (r *Router) silenced(rt *rules.Runtime, c *router.Claimed) bool {
	s := r.silencedBy(rt, c.Event.Source, func() (*router.View, error) { return r.view(rt, c.Event) }, c.Rule, c.Sink)
	if s == nil {
		return false
	}
	r.setAside(c, router.StatusSilenced, silenceNote(s))
	return true
}

// setAside ends a claimed delivery as status, unattempted, with why.
func (r *Router) setAside(c *router.Claimed, status, why string) {
	r.metrics.outcome(c.Sink, status)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.SetAside(ctx, c.ID, r.owner, status, why, r.now()); err != nil && !errors.Is(err, router.ErrLeaseLost) {
		// The lease runs out and the delivery is looked at again.
		r.logs.Log(r.log, r.now(), slog.LevelError, "set-aside:"+c.Sink, "delivery: set aside", "sink", c.Sink, "delivery_id", c.ID, "status", status, "err", err)
	}
}

// waitsForPeers puts the delivery back, without an attempt, while its
// event has pending deliveries to the sinks its route names in after:,
// until about when the earliest of them is due. A store that cannot say
// counts as pending: waiting is safe, sending without the links is not
// what the route asked for.
func (r *Router) waitsForPeers(rt *rules.Runtime, c *router.Claimed) bool {
	rule, ok := r.ruleFor(rt, c.Rule)
	if !ok || c.Route >= len(rule.Routes) || len(rule.Routes[c.Route].After) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	due, pending, err := r.store.PendingFor(ctx, c.Event.Source, c.Event.ID, rule.Routes[c.Route].After)
	switch {
	case err != nil:
		r.postpone(c, r.now().Add(afterMinWait), "", err, "after:", "delivery: look up the deliveries after: waits for")
		return true
	case !pending:
		return false
	}
	now := r.now()
	r.postpone(c, now.Add(min(max(due.Sub(now), afterMinWait), afterMaxWait)),
		"waits for its event's deliveries to "+strings.Join(rule.Routes[c.Route].After, ", ")+" (after:)", nil, "", "")
	return true
}

// postpone puts a claimed delivery back until until without an attempt,
// with why as the reason the log shows ("" keeps the last one), logging
// cause (when not nil) as msg under the rate-limit key prefix+sink.
func (r *Router) postpone(c *router.Claimed, until time.Time, why string, cause error, prefix, msg string) {
	if cause != nil {
		r.logs.Log(r.log, r.now(), slog.LevelError, prefix+c.Sink, msg, "sink", c.Sink, "delivery_id", c.ID, "err", cause)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.Postpone(ctx, c.ID, r.owner, until, why); err != nil && !errors.Is(err, router.ErrLeaseLost) {
		r.logs.Log(r.log, r.now(), slog.LevelError, "postpone:"+c.Sink, "delivery: postpone", "sink", c.Sink, "delivery_id", c.ID, "err", err)
	}
}

// settle does what follows an attempt that ran from start to end: feeds
// the sink's adaptive sending (and holds the sink on a Retry-After),
// records the remote object under the dedup key, frees the slot, decides
// the next step (nextStep), and records it.
func (r *Router) settle(sr *rules.SinkRuntime, p *pool, c *router.Claimed, a *prepared, start, end time.Time, res router.Result, err error, requestDone func()) {
	wait, hold, pushedBack := p.pressure.observe(end, res, err)
	if hold {
		// Before the slot is freed: no worker of this process sends
		// within the window (pressure already says so), and, once this
		// is written, none of another replica either.
		r.holdSink(c.Sink, p.pressure.held())
	}
	if a.key != "" {
		// Record the remote object before the delivery's own outcome: if
		// the process dies in between, the delivery is sent again and
		// follows up on the object instead of creating a second one.
		r.releaseKey(c, a.key, router.RemoteObject{ID: res.RemoteID, Link: res.Link})
	}
	requestDone()
	paused := r.sinkPaused(c.Sink)
	f := nextStep(sr, c, start, end, err, paused, pushedBack, wait)
	f.Attempt.StatusCode, f.Attempt.RemoteID = res.StatusCode, res.RemoteID
	if f.Backpressure {
		r.metrics.pushedBack(c.Sink)
	} else {
		r.trackHealth(sr, c.Sink, err, paused)
	}
	if err != nil {
		f.Attempt.Error = runes.Truncate(err.Error(), 2000)
		r.logFailure(c, f, res.StatusCode)
	}
	r.metrics.attempt(c.Sink, f.Attempt.Outcome, end.Sub(start))
	if f.Status == router.StatusDead && a.cooldown[0] != "" {
		// Nothing was sent: the cooldown must not hold back the next.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.store.ReleaseCooldown(ctx, a.cooldown[0], a.cooldown[1], c.ID, r.now()); err != nil {
			r.logs.Log(r.log, r.now(), slog.LevelError, "cooldown:"+c.Sink, "delivery: release the cooldown of a dead delivery", "sink", c.Sink, "delivery_id", c.ID, "err", err)
		}
		cancel()
	}
	if !r.finish(c, f) {
		return
	}
	if f.Status == router.StatusPending {
		if p := r.pools.get(c.Sink); p != nil {
			p.wake()
		}
	}
}

// logFailure logs a failed attempt. One line per failure, but a sink
// failing for every delivery is summarised: 10 lines, then one a second
// per status code and outcome. Not per error text: texts that carry a
// request id or a local port differ for every delivery, and would each
// have a budget of their own.
func (r *Router) logFailure(c *router.Claimed, f router.Finish, status int) {
	r.logs.Log(r.log, r.now(), slog.LevelWarn, "delivery:"+c.Sink+":"+f.Attempt.Outcome+":"+strconv.Itoa(status), "delivery failed",
		"sink", c.Sink, "rule", c.Rule, "delivery_id", c.ID, "attempt", c.Attempts+1,
		"outcome", f.Attempt.Outcome, "backpressure", f.Backpressure, "status_code", status, "err", f.Attempt.Error)
}

// nextStep decides what follows an attempt that began at start and ended
// at end with err: delivered; dead (a permanent error, or the last
// attempt, unless the sink is paused); waiting out a backpressure answer
// (pushedBack, with the wait it asked for) without spending an attempt,
// for the first maxBackpressure of them;
// or a retry after the backoff, or after the pause probe while the sink
// is paused. It is the whole retry policy, and reads nothing else.
func nextStep(sr *rules.SinkRuntime, c *router.Claimed, start, end time.Time, err error, paused, pushedBack bool, wait time.Duration) router.Finish {
	f := router.Finish{Attempt: router.AttemptRecord{At: start, Duration: end.Sub(start)}}
	switch {
	case err == nil:
		f.Status, f.Attempt.Outcome = router.StatusDelivered, router.OutcomeDelivered
		return f
	case pushedBack && c.Throttled < maxBackpressure:
		// Not a failure: the receiver said when to come back.
		f.Status, f.Attempt.Outcome, f.Backpressure = router.StatusPending, router.OutcomeRetry, true
		f.NextAttemptAt = end.Add(wait)
	case router.IsPermanent(err) || (c.Attempts+1 >= sr.Retry.MaxAttempts && !paused):
		f.Status, f.Attempt.Outcome = router.StatusDead, router.OutcomeDead
		return f
	case paused:
		// Pause, don't drop: while the sink is down as a whole, its
		// deliveries wait for it instead of running out of attempts.
		f.Status, f.Attempt.Outcome = router.StatusPending, router.OutcomeRetry
		f.NextAttemptAt = end.Add(max(sr.PauseProbe, router.RetryAfterOf(err)))
	default:
		f.Status, f.Attempt.Outcome = router.StatusPending, router.OutcomeRetry
		f.NextAttemptAt = end.Add(NextDelay(sr.Retry, c.Attempts+1, router.RetryAfterOf(err)))
	}
	if ra := router.RetryAfterOf(err); ra > 0 {
		f.NotBefore = end.Add(ra) // a resume pulls retries forward, never past this
	}
	return f
}

// holdSink records the sink's hold in the store, so that other replicas
// honour it too. A failure is logged and otherwise ignored: this process
// honours the hold anyway, and the others learn of the window from their
// own answers.
func (r *Router) holdSink(sink string, until time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.HoldSink(ctx, sink, until); err != nil {
		r.logs.Log(r.log, r.now(), slog.LevelError, "hold-sink:"+sink, "delivery: record the sink's Retry-After hold", "sink", sink, "err", err)
	}
}

// keyBusyWait is how long a delivery waits when another delivery holds its
// dedup key: long enough not to spin, short next to an attempt.
const keyBusyWait = 250 * time.Millisecond

// acquireKey locks the delivery's dedup key and returns the remote id
// recorded for it. When the key is busy (or the store cannot say), the
// delivery is put back to wait, without spending an attempt.
func (r *Router) acquireKey(sr *rules.SinkRuntime, c *router.Claimed, key string) (router.RemoteObject, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	remote, ok, err := r.store.AcquireKey(ctx, c.Sink, key, keyOwner(r.owner, c.ID), r.now(), sr.Timeout+leaseMargin)
	if err == nil && ok {
		return remote, true
	}
	r.postpone(c, r.now().Add(keyBusyWait), "", err, "acquire-key:", "delivery: lock dedup key")
	return router.RemoteObject{}, false
}

// keyOwner names the holder of a dedup key lock: the delivery, not the
// process, since the workers of one process must exclude each other too.
func keyOwner(owner, deliveryID string) string { return owner + "/" + deliveryID }

func (r *Router) releaseKey(c *router.Claimed, key string, obj router.RemoteObject) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.ReleaseKey(ctx, c.Sink, key, keyOwner(r.owner, c.ID), obj); err != nil {
		// The lock runs out by itself; the remote id is what matters.
		r.logs.Log(r.log, r.now(), slog.LevelError, "release-key:"+c.Sink, "delivery: record remote object", "sink", c.Sink, "delivery_id", c.ID, "remote_id", obj.ID, "err", err)
	}
}

// finish records an attempt's outcome, retrying for a while if the store
// is unreachable: an unrecorded success would be sent again once the lease
// runs out. It goes on while shutting down, for the same reason.
func (r *Router) finish(c *router.Claimed, f router.Finish) bool {
	deadline := time.Now().Add(leaseMargin / 2)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := r.store.Finish(ctx, c.ID, r.owner, f)
		cancel()
		switch {
		case err == nil:
			return true
		case errors.Is(err, router.ErrLeaseLost):
			r.logs.Log(r.log, r.now(), slog.LevelWarn, "lease-lost:"+c.Sink, "delivery lease lost; another worker owns it now", "sink", c.Sink, "delivery_id", c.ID)
			return false
		case time.Now().Add(wait).After(deadline):
			r.logs.Log(r.log, r.now(), slog.LevelError, "finish:"+c.Sink, "delivery: record outcome; it will be attempted again after its lease", "sink", c.Sink, "delivery_id", c.ID, "err", err)
			return false
		}
		time.Sleep(wait)
	}
}

// buildDelivery renders the route's fields over the rebuilt event view.
// Failures here are permanent: retrying the same render gives the same
// result.
//
// held is the route's cooldown (scope and key value) the delivery took.
func (r *Router) buildDelivery(rt *rules.Runtime, sink router.Sink, c *router.Claimed, digest map[string]any) (d *router.Delivery, route *rules.Route, held [2]string, err error) {
	rule, ok := r.ruleFor(rt, c.Rule)
	if !ok || c.Route >= len(rule.Routes) || rule.Routes[c.Route].Sink != c.Sink {
		return nil, nil, held, router.Permanent(fmt.Errorf("rule %q route %d to sink %q is no longer in the config", c.Rule, c.Route, c.Sink))
	}
	route = rule.Routes[c.Route]
	if src, ok := rt.Source(c.Event.Source); ok && digest == nil && takesEventJSON(src, route, sink) {
		if b, ok := src.Adapter().(source.SalesIQ).EventJSON(&router.Incoming{Source: c.Event.Source, Headers: c.Event.Headers, Body: c.Event.Body, ReceivedAt: c.Event.ReceivedAt}); ok {
			return &router.Delivery{ID: c.ID, Rule: c.Rule, Sink: c.Sink, Attempt: c.Attempts + 1, EventJSON: b, Fields: map[string]string{}}, route, held, nil
		}
	}
	view, err := r.view(rt, c.Event)
	if err != nil {
		return nil, nil, held, router.Permanent(fmt.Errorf("decode event: %w", err))
	}
	data := view.Data()
	if digest != nil {
		// A digest: the carrier's view with the group's events, which is
		// also what a sink that sends the view (http's default body)
		// sends.
		data = maps.Clone(data)
		maps.Copy(data, digest)
	}
	d = &router.Delivery{ID: c.ID, Rule: c.Rule, Sink: c.Sink, Attempt: c.Attempts + 1, Event: data, Fields: map[string]string{}}
	if route.DedupKey != nil {
		s, err := route.DedupKey.Render(data)
		if err != nil {
			return nil, nil, held, router.Permanent(fmt.Errorf("render dedup_key: %w", err))
		}
		d.DedupKey = strings.TrimSpace(s)
	}
	if route.UsesLinks {
		links, err := r.links(d.DedupKey)
		if err != nil {
			return nil, nil, held, err
		}
		// A copy: the view is cached and shared, the links are this
		// delivery's.
		data = rt.WithLinks(data, links)
	}
	if rule.Unless != nil {
		data = maps.Clone(data)
		data["timer"] = timerData(rule, route, c.Event, r.now())
	}
	if route.Cooldown != nil {
		key, carried, err := r.cooldown(rule.Name, route, c, data)
		if err != nil {
			return nil, nil, held, err
		}
		held = [2]string{route.Scope(rule.Name), key}
		data = maps.Clone(data)
		data["suppressed"] = carried
	}
	for _, f := range route.Fields {
		s, err := f.Render(data)
		if err != nil {
			return nil, nil, held, router.Permanent(fmt.Errorf("render %s: %w", f.Name(), err))
		}
		d.Fields[f.Name()] = s
	}
	return d, route, held, nil
}

// lookupError is a failed read of what a delivery's rendering needs
// from the store (its links, its cooldown): the delivery waits and tries
// again, as for a busy dedup key.
type lookupError struct {
	what string
	err  error
}

func (e *lookupError) Error() string { return e.what + ": " + e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

// cooledError is a delivery its route's cooldown suppresses: holder sent
// for the same key value within the cooldown.
type cooledError struct{ holder, key string }

func (e *cooledError) Error() string { return "suppressed by the cooldown of delivery " + e.holder }

// cooldown takes the route's cooldown for the delivery's key value, and
// returns what the cooldown before it suppressed; a *cooledError when
// another delivery holds it.
func (r *Router) cooldown(rule string, route *rules.Route, c *router.Claimed, data map[string]any) (string, int, error) {
	key, err := route.Cooldown.Render(data)
	if err != nil {
		return "", 0, router.Permanent(fmt.Errorf("render cooldown.key: %w", err))
	}
	key = strings.TrimSpace(key)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	holder, carried, err := r.store.Cooldown(ctx, route.Scope(rule), key, c.ID, r.now(), route.Cooldown.For)
	switch {
	case err != nil:
		return "", 0, &lookupError{what: "take the cooldown", err: err}
	case holder != c.ID:
		return "", 0, &cooledError{holder: holder, key: key}
	}
	return key, carried, nil
}

// links returns what every sink created for the dedup key value key; no
// key, no links.
func (r *Router) links(key string) (map[string]router.Link, error) {
	if key == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	links, err := r.store.Links(ctx, key)
	if err != nil {
		return nil, &lookupError{what: "look up links", err: err}
	}
	return links, nil
}

// takesEventJSON reports whether deliveries of src's events over route to
// sink are handed the event as JSON written straight from the stored body
// (Delivery.EventJSON) instead of the decoded view: the sink reads nothing
// else of the event on such a route, and the source can (salesiq).
func takesEventJSON(src *rules.Source, route *rules.Route, sink router.Sink) bool {
	if _, ok := src.Adapter().(source.SalesIQ); !ok || len(route.Fields) > 0 || route.DedupKey != nil || route.Cooldown != nil {
		return false
	}
	j, ok := sink.(router.EventJSONSink)
	return ok && j.EventJSONOnly()
}

// view rebuilds an event's view from its stored raw body.
func (r *Router) view(rt *rules.Runtime, ev *router.EventRecord) (*router.View, error) {
	if v := r.views.get(rt, ev.Source, ev.ID); v != nil {
		return v, nil
	}
	in := &router.Incoming{Source: ev.Source, Headers: ev.Headers, Body: ev.Body, ReceivedAt: ev.ReceivedAt}
	if src, ok := rt.Source(ev.Source); ok {
		return src.Decode(in)
	}
	// The source left the config since: a generic view still renders.
	return source.Generic{}.Decode(in)
}

// NextDelay is the wait before the next attempt after attempt number n
// (1-based) failed: exponential with jitter from rc, computed with
// cenkalti/backoff, and never less than retryAfter.
func NextDelay(rc config.RetryConfig, n int, retryAfter time.Duration) time.Duration {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Duration(rc.Initial)),
		backoff.WithMultiplier(rc.Multiplier),
		backoff.WithMaxInterval(time.Duration(rc.MaxInterval)),
		backoff.WithRandomizationFactor(rc.Jitter),
		backoff.WithMaxElapsedTime(0),
	)
	var d time.Duration
	for i := 0; i < max(n, 1); i++ {
		d = b.NextBackOff()
	}
	return max(d, retryAfter)
}
