package storetest

import (
	"time"

	"github.com/hookroute/hookroute/router"
)

// Backpressure: a receiver's "not now" (429 or 503 with Retry-After) holds
// the whole sink for every claimer, and costs a delivery no attempt.

// throttled is a backpressure answer at at, asking for a retry at next.
func throttled(at, next time.Time) router.Finish {
	f := retry(at, next)
	f.Attempt.StatusCode, f.Attempt.Error = 429, "429 Too Many Requests"
	f.NotBefore, f.Backpressure = next, true
	return f
}

// testBackpressureFinish: a backpressure answer is logged as an attempt
// but counted in Throttled, not Attempts; an ordinary failure still
// counts as an attempt; a replay resets both counters.
func testBackpressureFinish(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	e.wantClaimCounts(sink, "first claim", t0, "new delivery", 0, 0)
	e.finish("d1", "w1", throttled(t0, t0.Add(time.Second)))
	e.wantClaimCounts(sink, "after one backpressure answer", t0.Add(time.Second), "after a backpressure answer", 0, 1)
	e.finish("d1", "w1", throttled(t0.Add(time.Second), t0.Add(2*time.Second)))
	e.wantClaimCounts(sink, "after two", t0.Add(2*time.Second), "after two backpressure answers", 0, 2)
	e.finish("d1", "w1", retry(t0.Add(2*time.Second), t0.Add(3*time.Second)))
	d := e.get("d1")
	if d.Attempts != 1 || len(d.AttemptLog) != 3 {
		e.Errorf("after an ordinary failure: attempts %d, %d logged; want 1, 3", d.Attempts, len(d.AttemptLog))
	}
	if len(d.AttemptLog) == 3 && d.AttemptLog[0].StatusCode != 429 {
		e.Errorf("first logged attempt: status %d, want the 429", d.AttemptLog[0].StatusCode)
	}
	e.wantClaimCounts(sink, "after the failure", t0.Add(3*time.Second), "after the failure", 1, 2)
	e.finish("d1", "w1", dead(t0.Add(3*time.Second)))
	e.replay("d1", "ops", t0.Add(4*time.Second))
	e.wantClaimCounts(sink, "after the replay", t0.Add(4*time.Second), "after a replay", 0, 0)
}

// wantClaimCounts claims sink's one delivery (as w1, at at) and checks its
// attempt and backpressure counters; what names the claim in its error,
// label the check in its own.
func (e *env) wantClaimCounts(sink, what string, at time.Time, label string, attempts, throttled int) {
	e.Helper()
	cs := e.claim(sink, "w1", at, time.Minute, 1)
	if len(cs) != 1 {
		e.Fatalf("%s: claimed %d, want 1", what, len(cs))
	}
	if c := cs[0]; c.Attempts != attempts || c.Throttled != throttled {
		e.Errorf("%s: attempts %d, throttled %d; want %d, %d", label, c.Attempts, c.Throttled, attempts, throttled)
	}
}

// testHoldSink: while a sink is held nobody claims its deliveries, NextDue
// says when the hold ends, a hold only ever moves later, other sinks are
// not held, and SinkStates shows it without pausing the sink.
func testHoldSink(e *env) {
	sink, other := e.n("held"), e.n("free")
	hold := func(until time.Time) {
		e.Helper()
		if err := e.s.HoldSink(e.ctx, sink, until); err != nil {
			e.Fatalf("HoldSink(%v): %v", until, err)
		}
	}
	nextDue := func(what string, want time.Time) {
		e.Helper()
		got, ok, err := e.s.NextDue(e.ctx, sink)
		if err != nil || !ok || !got.Equal(want) {
			e.Errorf("%s: NextDue = %v, %v, %v; want %v", what, got, ok, err, want)
		}
	}
	hold(t0.Add(time.Minute)) // nothing pending yet: a hold alone is no due time
	if _, ok, err := e.s.NextDue(e.ctx, sink); err != nil || ok {
		e.Errorf("NextDue of a held sink with nothing pending = %v, %v; want none", ok, err)
	}
	e.ingestOne("a", sink, t0)
	e.ingestOne("b", sink, t0)
	e.ingestOne("o", other, t0)
	e.wantIDs("claim while held", e.claimIDs(sink, "w1", t0.Add(30*time.Second), time.Minute, 10))
	e.wantIDs("claim by another owner while held", e.claimIDs(sink, "w2", t0.Add(59*time.Second), time.Minute, 10))
	e.wantIDs("claim of another sink", e.claimIDs(other, "w1", t0.Add(30*time.Second), time.Minute, 10), "o")
	nextDue("while held", t0.Add(time.Minute))

	hold(t0.Add(30 * time.Second)) // earlier than the hold in force: kept at the later
	nextDue("after an earlier hold", t0.Add(time.Minute))
	st := e.sinkStates()[sink]
	if st.Paused || !st.HeldUntil.Equal(t0.Add(time.Minute)) {
		e.Errorf("SinkStates = %+v, want held until %v and not paused", st, t0.Add(time.Minute))
	}
	hold(t0.Add(2 * time.Minute))
	nextDue("after a later hold", t0.Add(2*time.Minute))
	e.wantIDs("claim at the first hold's end", e.claimIDs(sink, "w1", t0.Add(time.Minute), time.Minute, 10))
	e.wantIDs("claim at the hold's end", e.claimIDs(sink, "w1", t0.Add(2*time.Minute), time.Minute, 10), "a", "b")

	// Pausing and resuming keeps the hold.
	if err := e.s.SetSinkPaused(e.ctx, sink, true, "down", t0.Add(3*time.Minute)); err != nil {
		e.Fatalf("SetSinkPaused: %v", err)
	}
	if st := e.sinkStates()[sink]; !st.Paused || !st.HeldUntil.Equal(t0.Add(2*time.Minute)) {
		e.Errorf("after a pause: SinkStates = %+v, want paused and the hold kept", st)
	}
}

func (e *env) sinkStates() map[string]router.SinkState {
	e.Helper()
	m, err := e.s.SinkStates(e.ctx)
	if err != nil {
		e.Fatalf("SinkStates: %v", err)
	}
	return m
}
