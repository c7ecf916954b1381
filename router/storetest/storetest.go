// Package storetest is the conformance suite for router.Store. Every
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) router.Store { return openTestStore(t) })
//	}
//
// The suite pins down the behaviour the router relies on and the interface
// comments leave implicit:
//
//   - Times round-trip at microsecond precision (the suite uses no finer
//     times), and compare with time.Time.Equal.
//   - A delivery's CreatedAt is its event's ReceivedAt, so that the delivery
//     log has a stable order that does not depend on the store's clock.
//   - A delivery is due when next_attempt_at <= now: one created with
//     NextAttemptAt == now is claimable at now.
//   - ListDeliveries orders by CreatedAt descending, then ID descending, and
//     leaves AttemptLog empty. ListEvents orders by ReceivedAt, Source, ID,
//     all descending, and leaves Body empty. Ids and sources compare
//     byte-wise. A Cursor is the last item of the previous page; the next
//     page starts strictly after it.
//   - PendingCounts omits sinks with neither pending nor dead deliveries,
//     or reports 0.
//   - A delivery is Leased while it is pending with a lease owner.
//   - Replay keeps the attempt log and LastError; the attempts after it are
//     numbered on from the log, and Attempts counts from 0 again.
//   - Ingest of a duplicate, found by id or by body hash, sets the event's
//     ID to the stored event's, preferring the one with the same id.
//   - SetSinkPaused keeps Since while the paused state does not change;
//     resuming a paused sink makes its waiting retries (attempted before,
//     not leased, scheduled later) due at the resume's time.
//
// Each subtest opens a fresh store and closes it when it ends. All names
// (sources, sinks, rules, delivery ids) carry a per-subtest random prefix,
// so an implementation whose open function hands out the same shared
// database (a PostgreSQL schema, say) needs no cleanup between subtests.
// Subtests run one after another; only Release("") and Prune reach beyond
// them. The Prune subtest works in 2011 (tp), long before every other
// subtest's times (t0 and around it) and before the wall clock, so that it
// can count exactly what a shared database lets it delete. Listings that
// are not narrowed by a namespaced name use a time window of their own.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

// t0 is the suite's "now". It has a microsecond part so that a store that
// truncated to milliseconds would fail; the suite never relies on finer
// precision, which PostgreSQL does not keep.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

// Run runs the conformance suite. open is called once per subtest and must
// return an empty (or namespace-isolated) store; Run closes it.
func Run(t *testing.T, open func(t *testing.T) router.Store) {
	tests := []struct {
		name string
		fn   func(e *env)
	}{
		{"IngestThenGet", testIngestThenGet},
		{"IngestEmptyFields", testIngestEmptyFields},
		{"DuplicateIngest", testDuplicateIngest},
		{"DuplicateIngestRace", testDuplicateIngestRace},
		{"DuplicateBodyHash", testDuplicateBodyHash},
		{"DuplicateBodyHashRace", testDuplicateBodyHashRace},
		{"ZeroDeliveries", testZeroDeliveries},
		{"ClaimDue", testClaimDue},
		{"ClaimLease", testClaimLease},
		{"ClaimEvents", testClaimEvents},
		{"ConcurrentClaim", testConcurrentClaim},
		{"LeasedAtIngest", testLeasedAtIngest},
		{"FinishDelivered", testFinishDelivered},
		{"FinishRetryThenDead", testFinishRetryThenDead},
		{"FinishStaleOwner", testFinishStaleOwner},
		{"Release", testRelease},
		{"NextDue", testNextDue},
		{"PendingCounts", testPendingCounts},
		{"ListDeliveries", testListDeliveries},
		{"ListDeliveriesDefaultLimit", testListDeliveriesDefaultLimit},
		{"IngestCancelledContext", testIngestCancelledContext},
		{"ConcurrentIngest", testConcurrentIngest},
		{"Ping", testPing},
		{"ProbeWrite", testProbeWrite},
		{"Postpone", testPostpone},
		{"DedupKeyLock", testDedupKeyLock},
		{"DedupKeyRace", testDedupKeyRace},
		{"Links", testLinks},
		{"PendingFor", testPendingFor},
		{"SetAside", testSetAside},
		{"Cooldown", testCooldown},
		{"Silences", testSilences},
		{"Groups", testGroups},
		{"GroupRace", testGroupRace},
		{"Timers", testTimers},
		{"TimerRace", testTimerRace},
		{"TimersList", testTimersList},
		{"CooldownRace", testCooldownRace},
		{"DeliveryFields", testDeliveryFields},
		{"ListDeliveriesFilters", testListDeliveriesFilters},
		{"ListDeliveriesPaging", testListDeliveriesPaging},
		{"ListEvents", testListEvents},
		{"ListEventsPaging", testListEventsPaging},
		{"Replay", testReplay},
		{"ReplayPending", testReplayPending},
		{"PendingCountsDead", testPendingCountsDead},
		{"Prune", testPrune},
		{"SinkState", testSinkState},
		{"ResumeMakesRetriesDue", testResumeMakesRetriesDue},
		{"BackpressureFinish", testBackpressureFinish},
		{"HoldSink", testHoldSink},
		{"SigningKeys", testSigningKeys},
		{"SigningKeyRace", testSigningKeyRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(&env{
				T:      t,
				s:      s,
				ctx:    t.Context(),
				prefix: fmt.Sprintf("%s-%08x", strings.ToLower(tc.name), rand.Uint32()),
			})
		})
	}
}

// env is one subtest's store and namespace.
type env struct {
	*testing.T
	s      router.Store
	ctx    context.Context
	prefix string
}

// n namespaces a name: a source, sink, rule or delivery id.
func (e *env) n(name string) string { return e.prefix + "-" + name }

// event returns a typical event of source src.
func (e *env) event(src, id string, at time.Time) *router.EventRecord {
	return &router.EventRecord{
		Source:     src,
		ID:         id,
		Name:       "conversation.rated",
		ReceivedAt: at,
		Headers:    map[string]string{"content-type": "application/json"},
		Body:       []byte(`{"id":"` + id + `"}`),
		Matched:    []string{e.n("rule")},
	}
}

// delivery returns a delivery of rule "rule", route 0.
func (e *env) delivery(id, sink string, next time.Time) router.NewDelivery {
	return router.NewDelivery{ID: e.n(id), Rule: e.n("rule"), Sink: sink, NextAttemptAt: next}
}

// ingest ingests a new event and fails the test unless it was stored.
func (e *env) ingest(ev *router.EventRecord, ds ...router.NewDelivery) {
	e.Helper()
	dup, err := e.s.Ingest(e.ctx, ev, ds)
	if err != nil {
		e.Fatalf("Ingest(%s/%s): %v", ev.Source, ev.ID, err)
	}
	if dup {
		e.Fatalf("Ingest(%s/%s): duplicate, want new", ev.Source, ev.ID)
	}
}

// ingestOne ingests a new event (id = delivery id) with one delivery.
func (e *env) ingestOne(id, sink string, next time.Time) {
	e.Helper()
	e.ingest(e.event(e.n("src"), id, t0), e.delivery(id, sink, next))
}

// claim claims and fails the test on error.
func (e *env) claim(sink, owner string, now time.Time, lease time.Duration, max int) []*router.Claimed {
	e.Helper()
	cs, err := e.s.Claim(e.ctx, sink, owner, now, lease, max)
	if err != nil {
		e.Fatalf("Claim(%s, %s, %v): %v", sink, owner, now, err)
	}
	return cs
}

// claimIDs claims and returns the claimed ids, without the prefix.
func (e *env) claimIDs(sink, owner string, now time.Time, lease time.Duration, max int) []string {
	e.Helper()
	return e.ids(e.claim(sink, owner, now, lease, max))
}

func (e *env) ids(cs []*router.Claimed) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, strings.TrimPrefix(c.ID, e.prefix+"-"))
	}
	return out
}

func (e *env) listIDs(ds []*router.DeliveryRecord) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, strings.TrimPrefix(d.ID, e.prefix+"-"))
	}
	return out
}

// finish finishes and fails the test on error.
func (e *env) finish(id, owner string, f router.Finish) {
	e.Helper()
	if err := e.s.Finish(e.ctx, e.n(id), owner, f); err != nil {
		e.Fatalf("Finish(%s, %s): %v", id, owner, err)
	}
}

// get reads a delivery and fails the test on error.
func (e *env) get(id string) *router.DeliveryRecord {
	e.Helper()
	d, err := e.s.GetDelivery(e.ctx, e.n(id))
	if err != nil {
		e.Fatalf("GetDelivery(%s): %v", id, err)
	}
	return d
}

func (e *env) list(f router.DeliveryFilter) []string {
	e.Helper()
	ds, err := e.s.ListDeliveries(e.ctx, f)
	if err != nil {
		e.Fatalf("ListDeliveries(%+v): %v", f, err)
	}
	return e.listIDs(ds)
}

func (e *env) wantIDs(what string, got []string, want ...string) {
	e.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		e.Errorf("%s = %q, want %q", what, got, want)
	}
}

func checkEvent(t *testing.T, got, want *router.EventRecord) {
	t.Helper()
	if got.Source != want.Source || got.ID != want.ID || got.Name != want.Name ||
		!got.ReceivedAt.Equal(want.ReceivedAt) || got.Quarantined != want.Quarantined ||
		!bytes.Equal(got.Body, want.Body) || !maps.Equal(got.Headers, want.Headers) ||
		!slices.Equal(got.Matched, want.Matched) {
		t.Errorf("event = %+v,\nwant %+v", got, want)
	}
}

func checkAttempts(t *testing.T, got, want []router.AttemptRecord) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.At.Equal(w.At) && g.Duration == w.Duration && g.Outcome == w.Outcome &&
			g.StatusCode == w.StatusCode && g.Error == w.Error && g.RemoteID == w.RemoteID
	}
	if !ok {
		t.Errorf("attempt log = %+v,\nwant %+v", got, want)
	}
}

func testIngestThenGet(e *env) {
	src := e.n("src")
	ev := &router.EventRecord{
		Source:      src,
		ID:          "ev-1",
		Name:        "conversation.rated",
		ReceivedAt:  t0,
		Headers:     map[string]string{"content-type": "application/json", "x-siqsignature": "c2ln"},
		Body:        []byte{'{', 0x00, 0xff, 0x80, '}'}, // not UTF-8: bytes must survive as is
		Quarantined: true,
		Matched:     []string{e.n("r1"), e.n("r2")},
	}
	ds := []router.NewDelivery{
		{ID: e.n("d1"), Rule: e.n("r1"), Route: 0, Sink: e.n("sink-a"), NextAttemptAt: t0},
		{ID: e.n("d2"), Rule: e.n("r2"), Route: 3, Sink: e.n("sink-b"), NextAttemptAt: t0.Add(time.Minute)},
	}
	e.ingest(ev, ds...)

	got, err := e.s.GetEvent(e.ctx, src, "ev-1")
	if err != nil {
		e.Fatalf("GetEvent: %v", err)
	}
	checkEvent(e.T, got, ev)

	for _, nd := range ds {
		checkFreshDelivery(e, src, "ev-1", nd)
	}

	if _, err := e.s.GetEvent(e.ctx, src, "missing"); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("GetEvent(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := e.s.GetEvent(e.ctx, e.n("other-src"), "ev-1"); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("GetEvent(other source) error = %v, want ErrNotFound", err)
	}
	if _, err := e.s.GetDelivery(e.ctx, e.n("missing")); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("GetDelivery(missing) error = %v, want ErrNotFound", err)
	}
}

// checkFreshDelivery checks that the store holds nd, of event src/eventID
// ingested at t0, as it was ingested, with nothing happened to it yet.
func checkFreshDelivery(e *env, src, eventID string, nd router.NewDelivery) {
	d, err := e.s.GetDelivery(e.ctx, nd.ID)
	if err != nil {
		e.Fatalf("GetDelivery(%s): %v", nd.ID, err)
	}
	if d.ID != nd.ID || d.Source != src || d.EventID != eventID || d.Rule != nd.Rule ||
		d.Route != nd.Route || d.Sink != nd.Sink || d.Status != router.StatusPending ||
		d.Attempts != 0 || !d.NextAttemptAt.Equal(nd.NextAttemptAt) || !d.CreatedAt.Equal(t0) ||
		d.LastError != "" || d.RemoteID != "" || len(d.AttemptLog) != 0 {
		e.Errorf("GetDelivery(%s) = %+v, want a fresh delivery of %+v created at %v", nd.ID, d, nd, t0)
	}
}

func testIngestEmptyFields(e *env) {
	ev := &router.EventRecord{Source: e.n("src"), ID: "bare", Name: "ping", ReceivedAt: t0}
	e.ingest(ev)
	got, err := e.s.GetEvent(e.ctx, ev.Source, ev.ID)
	if err != nil {
		e.Fatalf("GetEvent: %v", err)
	}
	if len(got.Headers) != 0 || len(got.Body) != 0 || len(got.Matched) != 0 || got.Quarantined {
		e.Errorf("GetEvent = %+v, want empty headers, body and matched", got)
	}
}

func testDuplicateIngest(e *env) {
	src, sink := e.n("src"), e.n("sink")
	first := e.event(src, "ev-1", t0)
	e.ingest(first, e.delivery("d1", sink, t0))

	again := e.event(src, "ev-1", t0.Add(time.Second))
	again.Name = "something.else"
	again.Body = []byte(`{"changed":true}`)
	dup, err := e.s.Ingest(e.ctx, again, []router.NewDelivery{e.delivery("d2", sink, t0)})
	if err != nil {
		e.Fatalf("second Ingest: %v", err)
	}
	if !dup {
		e.Errorf("second Ingest: duplicate = false, want true")
	}
	got, err := e.s.GetEvent(e.ctx, src, "ev-1")
	if err != nil {
		e.Fatalf("GetEvent: %v", err)
	}
	checkEvent(e.T, got, first)
	if _, err := e.s.GetDelivery(e.ctx, e.n("d2")); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("delivery of the duplicate: GetDelivery error = %v, want ErrNotFound", err)
	}
	e.wantIDs("deliveries", e.list(router.DeliveryFilter{Source: src}), "d1")

	// The id is unique per source only.
	e.ingest(e.event(e.n("src2"), "ev-1", t0), e.delivery("d3", sink, t0))
}

func testDuplicateIngestRace(e *env) {
	const n = 50
	src := e.n("src")
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		dups   = make([]bool, n)
		errs   = make([]error, n)
		sinkOf = func(g int) string { return e.n(fmt.Sprintf("sink-%d", g)) }
	)
	for g := range n {
		wg.Go(func() {
			ds := []router.NewDelivery{
				e.delivery(fmt.Sprintf("g%d-a", g), sinkOf(g), t0),
				e.delivery(fmt.Sprintf("g%d-b", g), sinkOf(g), t0),
			}
			<-start
			dups[g], errs[g] = e.s.Ingest(e.ctx, e.event(src, "same", t0), ds)
		})
	}
	close(start)
	wg.Wait()

	winner := e.soleWinner(dups, errs)
	got := e.list(router.DeliveryFilter{Source: src})
	slices.Sort(got)
	e.wantIDs("deliveries", got, fmt.Sprintf("g%d-a", winner), fmt.Sprintf("g%d-b", winner))
}

func testZeroDeliveries(e *env) {
	src := e.n("src")
	ev := e.event(src, "ev-1", t0)
	ev.Matched = nil
	e.ingest(ev)
	if _, err := e.s.GetEvent(e.ctx, src, "ev-1"); err != nil {
		e.Fatalf("GetEvent: %v", err)
	}
	e.wantIDs("deliveries", e.list(router.DeliveryFilter{Source: src}))
	dup, err := e.s.Ingest(e.ctx, ev, nil)
	if err != nil || !dup {
		e.Errorf("second Ingest = %v, %v; want duplicate", dup, err)
	}
}

func testClaimDue(e *env) {
	a, b := e.n("sink-a"), e.n("sink-b")
	// Ingested out of due order, so that insertion order cannot pass for
	// due order.
	e.ingestOne("a3", a, t0) // due exactly now
	e.ingestOne("a1", a, t0.Add(-2*time.Minute))
	e.ingestOne("a4", a, t0.Add(time.Minute))
	e.ingestOne("a2", a, t0.Add(-time.Minute))
	e.ingestOne("b1", b, t0.Add(-3*time.Minute))

	cs := e.claim(a, "w1", t0, time.Hour, 2)
	e.wantIDs("first claim", e.ids(cs), "a1", "a2")
	if len(cs) > 0 {
		c := cs[0]
		if c.Rule != e.n("rule") || c.Route != 0 || c.Sink != a || c.Attempts != 0 || c.Event == nil {
			e.Fatalf("claimed = %+v", c)
		}
		checkEvent(e.T, c.Event, e.event(e.n("src"), "a1", t0))
		if want := t0.Add(-2 * time.Minute); !c.Due.Equal(want) {
			e.Errorf("claimed Due = %v, want its next_attempt_at %v", c.Due, want)
		}
	}
	e.wantIDs("second claim", e.claimIDs(a, "w1", t0, time.Hour, 10), "a3")
	e.wantIDs("claim with nothing due", e.claimIDs(a, "w2", t0, time.Hour, 10))
	e.wantIDs("claim a minute later", e.claimIDs(a, "w2", t0.Add(time.Minute), time.Hour, 10), "a4")
	e.wantIDs("claim of sink b", e.claimIDs(b, "w1", t0, time.Hour, 10), "b1")
	e.wantIDs("claim of an unknown sink", e.claimIDs(e.n("sink-c"), "w1", t0, time.Hour, 10))
}

// testClaimEvents: one claim carries the events of deliveries from two
// sources, with ids that JSON or SQL would mangle if quoted by hand, and
// two deliveries of one event; each delivery gets its own event, whole.
func testClaimEvents(e *env) {
	sink := e.n("sink")
	s1, s2 := e.n("src1"), e.n("src2")
	ids := []string{`q"uote`, `back\slash`, "ünï \u00e9 😀", "a,b'c", "same"}
	want := map[string]*router.EventRecord{}
	for i, id := range ids {
		for _, src := range []string{s1, s2} {
			ev := e.event(src, id, t0.Add(time.Duration(i)*time.Second))
			ev.Headers["x-n"] = src + id
			d := fmt.Sprintf("%s/%d", src, i)
			ds := []router.NewDelivery{e.delivery(d, sink, t0)}
			if id == "same" {
				ds = append(ds, e.delivery(d+"-twin", sink, t0))
			}
			e.ingest(ev, ds...)
			want[e.n(d)] = ev
			if id == "same" {
				want[e.n(d+"-twin")] = ev
			}
		}
	}
	cs := e.claim(sink, "w1", t0, time.Hour, 100)
	if len(cs) != len(want) {
		e.Fatalf("claimed %d deliveries, want %d", len(cs), len(want))
	}
	for _, c := range cs {
		w, ok := want[c.ID]
		if !ok || c.Event == nil {
			e.Fatalf("claimed %s with event %+v: not one of ours", c.ID, c.Event)
		}
		checkEvent(e.T, c.Event, w)
	}
}

func testClaimLease(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	e.wantIDs("claim by w1", e.claimIDs(sink, "w1", t0, 30*time.Second, 10), "d1")
	e.wantIDs("claim by w2 within the lease", e.claimIDs(sink, "w2", t0.Add(29*time.Second), 30*time.Second, 10))
	e.wantIDs("claim by w1 within its own lease", e.claimIDs(sink, "w1", t0.Add(29*time.Second), 30*time.Second, 10))
	cs := e.claim(sink, "w2", t0.Add(31*time.Second), 30*time.Second, 10)
	e.wantIDs("claim by w2 after the lease", e.ids(cs), "d1")
	if len(cs) == 1 && cs[0].Attempts != 0 {
		e.Errorf("reclaimed Attempts = %d, want 0 (a lapsed lease is not an attempt)", cs[0].Attempts)
	}
	e.wantIDs("claim by w3 within w2's lease", e.claimIDs(sink, "w3", t0.Add(60*time.Second), 30*time.Second, 10))
}

func testConcurrentClaim(e *env) {
	const rows, workers = 60, 6
	sink := e.n("sink")
	for i := range rows {
		e.ingestOne(fmt.Sprintf("d%02d", i), sink, t0.Add(-time.Duration(i)*time.Second))
	}
	var (
		mu   sync.Mutex
		seen = map[string]string{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		owner := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				cs, err := e.s.Claim(e.ctx, sink, owner, t0, time.Hour, 4)
				if err != nil {
					e.Errorf("Claim: %v", err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, c := range cs {
					if prev, ok := seen[c.ID]; ok {
						e.Errorf("%s claimed by %s and %s", c.ID, prev, owner)
					}
					seen[c.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != rows {
		e.Errorf("claimed %d distinct deliveries, want %d", len(seen), rows)
	}
}

// testLeasedAtIngest: a delivery leased at ingest is another worker's
// until the lease ends, its owner finishes it without a claim, and once
// the lease runs out it is due again for anyone.
func testLeasedAtIngest(e *env) {
	sink := e.n("sink")
	leased := e.delivery("d1", sink, t0)
	leased.LeaseOwner, leased.LeaseUntil = "w1", t0.Add(time.Minute)
	expiring := e.delivery("d2", sink, t0)
	expiring.LeaseOwner, expiring.LeaseUntil = "w1", t0.Add(time.Minute)
	e.ingest(e.event(e.n("src"), "e1", t0), leased, expiring, e.delivery("d3", sink, t0))

	e.wantIDs("claim while leased", e.claimIDs(sink, "w2", t0.Add(time.Second), time.Hour, 10), "d3")
	e.wantIDs("the owner's claim", e.claimIDs(sink, "w1", t0.Add(time.Second), time.Minute, 10))
	if err := e.s.Finish(e.ctx, e.n("d1"), "w2", router.Finish{Attempt: router.AttemptRecord{At: t0, Outcome: router.OutcomeDelivered}, Status: router.StatusDelivered}); !errors.Is(err, router.ErrLeaseLost) {
		e.Errorf("Finish by another owner = %v, want ErrLeaseLost", err)
	}
	att := router.AttemptRecord{At: t0.Add(time.Second), Duration: time.Millisecond, Outcome: router.OutcomeDelivered, StatusCode: 200}
	e.finish("d1", "w1", router.Finish{Attempt: att, Status: router.StatusDelivered})
	if d := e.get("d1"); d.Status != router.StatusDelivered || d.Attempts != 1 {
		e.Errorf("d1 = %+v, want delivered after 1 attempt", d)
	}
	e.wantIDs("claim once the lease ran out", e.claimIDs(sink, "w2", t0.Add(2*time.Minute), time.Minute, 10), "d2")
}

func testFinishDelivered(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0, time.Minute, 10), "d1")
	att := router.AttemptRecord{
		At: t0.Add(time.Second), Duration: 250 * time.Millisecond,
		Outcome: router.OutcomeDelivered, StatusCode: 201, RemoteID: "T-1",
	}
	e.finish("d1", "w1", router.Finish{Attempt: att, Status: router.StatusDelivered})

	d := e.get("d1")
	if d.Status != router.StatusDelivered || d.Attempts != 1 || d.RemoteID != "T-1" || d.LastError != "" {
		e.Errorf("delivery = %+v, want delivered after 1 attempt with remote id T-1", d)
	}
	if d.UpdatedAt.Before(d.CreatedAt) {
		e.Errorf("UpdatedAt %v before CreatedAt %v", d.UpdatedAt, d.CreatedAt)
	}
	checkAttempts(e.T, d.AttemptLog, []router.AttemptRecord{att})

	e.wantIDs("claim after delivery", e.claimIDs(sink, "w2", t0.Add(24*time.Hour), time.Minute, 10))
	if err := e.s.Finish(e.ctx, e.n("d1"), "w1", router.Finish{Attempt: att, Status: router.StatusDelivered}); !errors.Is(err, router.ErrLeaseLost) {
		e.Errorf("second Finish error = %v, want ErrLeaseLost", err)
	}
	if _, ok, err := e.s.NextDue(e.ctx, sink); err != nil || ok {
		e.Errorf("NextDue = %v, %v; want none", ok, err)
	}
}

func testFinishRetryThenDead(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	e.ingestOne("d2", sink, t0)
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0, time.Hour, 10), "d1", "d2")

	retry := router.AttemptRecord{
		At: t0.Add(time.Second), Duration: 5 * time.Second,
		Outcome: router.OutcomeRetry, StatusCode: 503, Error: "503 Service Unavailable",
	}
	next := t0.Add(10 * time.Minute)
	e.finish("d1", "w1", router.Finish{Attempt: retry, Status: router.StatusPending, NextAttemptAt: next})
	d := e.get("d1")
	if d.Status != router.StatusPending || d.Attempts != 1 || !d.NextAttemptAt.Equal(next) || d.LastError != retry.Error {
		e.Errorf("after retry: %+v, want pending, 1 attempt, next %v, last error %q", d, next, retry.Error)
	}
	checkAttempts(e.T, d.AttemptLog, []router.AttemptRecord{retry})

	e.wantIDs("claim before the retry is due", e.claimIDs(sink, "w2", next.Add(-time.Second), time.Minute, 10))
	cs := e.claim(sink, "w2", next, time.Minute, 10)
	e.wantIDs("claim when the retry is due", e.ids(cs), "d1")
	if len(cs) == 1 && cs[0].Attempts != 1 {
		e.Errorf("claimed Attempts = %d, want 1", cs[0].Attempts)
	}
	dead := router.AttemptRecord{
		At: next.Add(time.Millisecond), Duration: 100 * time.Millisecond,
		Outcome: router.OutcomeDead, StatusCode: 400, Error: "400 Bad Request",
	}
	e.finish("d1", "w2", router.Finish{Attempt: dead, Status: router.StatusDead})
	d = e.get("d1")
	if d.Status != router.StatusDead || d.Attempts != 2 || d.LastError != dead.Error {
		e.Errorf("after dead: %+v, want dead after 2 attempts", d)
	}
	checkAttempts(e.T, d.AttemptLog, []router.AttemptRecord{retry, dead})

	// Dead at once, without an HTTP answer.
	now := router.AttemptRecord{
		At: t0.Add(2 * time.Second), Duration: time.Millisecond,
		Outcome: router.OutcomeDead, Error: "channel_not_found",
	}
	e.finish("d2", "w1", router.Finish{Attempt: now, Status: router.StatusDead})
	d = e.get("d2")
	if d.Status != router.StatusDead || d.Attempts != 1 || d.LastError != now.Error {
		e.Errorf("d2: %+v, want dead after 1 attempt", d)
	}
	checkAttempts(e.T, d.AttemptLog, []router.AttemptRecord{now})

	e.wantIDs("claim after dead", e.claimIDs(sink, "w3", t0.Add(24*time.Hour), time.Minute, 10))
}

func testFinishStaleOwner(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	att := router.AttemptRecord{At: t0, Duration: time.Second, Outcome: router.OutcomeDelivered, StatusCode: 200}
	fin := router.Finish{Attempt: att, Status: router.StatusDelivered}

	if err := e.s.Finish(e.ctx, e.n("d1"), "w1", fin); !errors.Is(err, router.ErrLeaseLost) {
		e.Errorf("Finish of an unclaimed delivery: error = %v, want ErrLeaseLost", err)
	}
	e.wantIDs("claim by w1", e.claimIDs(sink, "w1", t0, 30*time.Second, 10), "d1")
	e.wantIDs("claim by w2 after w1's lease", e.claimIDs(sink, "w2", t0.Add(time.Minute), 30*time.Second, 10), "d1")

	if err := e.s.Finish(e.ctx, e.n("d1"), "w1", fin); !errors.Is(err, router.ErrLeaseLost) {
		e.Errorf("Finish by the stale owner: error = %v, want ErrLeaseLost", err)
	}
	d := e.get("d1")
	if d.Status != router.StatusPending || d.Attempts != 0 || len(d.AttemptLog) != 0 {
		e.Errorf("after the stale Finish: %+v, want unchanged", d)
	}
	// The stale Finish must not have released w2's lease either.
	e.wantIDs("claim by w3 within w2's lease", e.claimIDs(sink, "w3", t0.Add(time.Minute+time.Second), 30*time.Second, 10))

	err := e.s.Finish(e.ctx, e.n("missing"), "w1", fin)
	if !errors.Is(err, router.ErrLeaseLost) && !errors.Is(err, router.ErrNotFound) {
		e.Errorf("Finish of an unknown delivery: error = %v, want ErrLeaseLost or ErrNotFound", err)
	}
	e.finish("d1", "w2", fin)
}

func testRelease(e *env) {
	sink := e.n("sink")
	for i := range 4 {
		e.ingestOne(fmt.Sprintf("d%d", i), sink, t0.Add(time.Duration(i-4)*time.Millisecond))
	}
	w1 := e.claimIDs(sink, e.n("w1"), t0, time.Hour, 2)
	e.wantIDs("claim by w1", w1, "d0", "d1")
	e.wantIDs("claim by w2", e.claimIDs(sink, e.n("w2"), t0, time.Hour, 2), "d2", "d3")

	if err := e.s.Release(e.ctx, e.n("w1")); err != nil {
		e.Fatalf("Release(w1): %v", err)
	}
	e.wantIDs("claim after Release(w1)", e.claimIDs(sink, e.n("w3"), t0, time.Hour, 10), "d0", "d1")
	att := router.AttemptRecord{At: t0, Outcome: router.OutcomeDelivered, StatusCode: 200}
	if err := e.s.Finish(e.ctx, e.n("d0"), e.n("w1"), router.Finish{Attempt: att, Status: router.StatusDelivered}); !errors.Is(err, router.ErrLeaseLost) {
		e.Errorf("Finish by the released owner: error = %v, want ErrLeaseLost", err)
	}

	if err := e.s.Release(e.ctx, ""); err != nil {
		e.Fatalf(`Release(""): %v`, err)
	}
	e.wantIDs(`claim after Release("")`, e.claimIDs(sink, e.n("w4"), t0, time.Hour, 10), "d0", "d1", "d2", "d3")
	if d := e.get("d0"); d.Attempts != 0 || len(d.AttemptLog) != 0 {
		e.Errorf("after Release: %+v, want no attempt recorded", d)
	}
}

func testNextDue(e *env) {
	sink := e.n("sink")
	if _, ok, err := e.s.NextDue(e.ctx, sink); err != nil || ok {
		e.Fatalf("NextDue of an empty sink = %v, %v; want none", ok, err)
	}
	e.ingestOne("late", sink, t0.Add(5*time.Minute))
	e.ingestOne("soon", sink, t0.Add(time.Minute))
	e.ingestOne("other", e.n("other-sink"), t0.Add(-time.Hour))

	want := func(what string, at time.Time) {
		e.Helper()
		got, ok, err := e.s.NextDue(e.ctx, sink)
		if err != nil || !ok || !got.Equal(at) {
			e.Errorf("%s: NextDue = %v, %v, %v; want %v", what, got, ok, err, at)
		}
	}
	want("initially", t0.Add(time.Minute))

	att := router.AttemptRecord{At: t0.Add(time.Minute), Outcome: router.OutcomeDelivered, StatusCode: 200}
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0.Add(time.Minute), time.Minute, 10), "soon")
	e.finish("soon", "w1", router.Finish{Attempt: att, Status: router.StatusDelivered})
	want("after the first is delivered", t0.Add(5*time.Minute))

	retryAt := t0.Add(3 * time.Minute)
	e.ingestOne("retry", sink, t0.Add(2*time.Minute))
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0.Add(2*time.Minute), time.Minute, 1), "retry")
	att.Outcome = router.OutcomeRetry
	e.finish("retry", "w1", router.Finish{Attempt: att, Status: router.StatusPending, NextAttemptAt: retryAt})
	want("after a retry is scheduled", retryAt)

	e.wantIDs("claim", e.claimIDs(sink, "w1", t0.Add(5*time.Minute), time.Minute, 10), "retry", "late")
	// Both are leased until t0+6m: a delivery in flight is not due.
	want("while leased", t0.Add(6*time.Minute))
	att.Outcome = router.OutcomeDead
	e.finish("late", "w1", router.Finish{Attempt: att, Status: router.StatusDead})
	e.finish("retry", "w1", router.Finish{Attempt: att, Status: router.StatusDead})
	if _, ok, err := e.s.NextDue(e.ctx, sink); err != nil || ok {
		e.Errorf("NextDue with nothing pending = %v, %v; want none", ok, err)
	}
}

func testPendingCounts(e *env) {
	a, b, c := e.n("sink-a"), e.n("sink-b"), e.n("sink-c")
	e.ingestOne("a1", a, t0.Add(-2*time.Minute))
	e.ingestOne("a2", a, t0.Add(-time.Minute))
	e.ingestOne("a3", a, t0.Add(time.Minute))
	e.ingestOne("b1", b, t0.Add(time.Minute))
	e.ingestOne("c1", c, t0)
	e.wantIDs("claim", e.claimIDs(c, "w1", t0, time.Minute, 10), "c1")
	e.finish("c1", "w1", router.Finish{
		Attempt: router.AttemptRecord{At: t0, Outcome: router.OutcomeDelivered, StatusCode: 200},
		Status:  router.StatusDelivered,
	})

	check := func(what string) {
		e.Helper()
		got, err := e.s.PendingCounts(e.ctx, t0)
		if err != nil {
			e.Fatalf("PendingCounts: %v", err)
		}
		if st := got[a]; st.Pending != 3 || st.OldestDueAge != 2*time.Minute {
			e.Errorf("%s: sink a = %+v, want 3 pending, oldest due 2m ago", what, st)
		}
		if st := got[b]; st.Pending != 1 || st.OldestDueAge != 0 {
			e.Errorf("%s: sink b = %+v, want 1 pending, none due", what, st)
		}
		if st, ok := got[c]; ok && st.Pending != 0 {
			e.Errorf("%s: sink c = %+v, want no pending", what, st)
		}
	}
	check("initially")
	// A leased delivery is still pending.
	e.wantIDs("claim", e.claimIDs(a, "w1", t0, time.Minute, 1), "a1")
	got, err := e.s.PendingCounts(e.ctx, t0)
	if err != nil {
		e.Fatalf("PendingCounts: %v", err)
	}
	if got[a].Pending != 3 {
		e.Errorf("with one leased: sink a = %+v, want 3 pending", got[a])
	}
}

func testListDeliveries(e *env) {
	src := e.n("src")
	sa, sb := e.n("sink-a"), e.n("sink-b")
	ra, rb := e.n("rule-a"), e.n("rule-b")
	nd := func(id, rule, sink string) router.NewDelivery {
		return router.NewDelivery{ID: e.n(id), Rule: rule, Sink: sink, NextAttemptAt: t0}
	}
	e.ingest(e.event(src, "e1", t0), nd("e1-a", ra, sa), nd("e1-b", rb, sb))
	e.ingest(e.event(src, "e2", t0.Add(time.Minute)), nd("e2-a", ra, sa))
	e.ingest(e.event(src, "e3", t0.Add(2*time.Minute)), nd("e3-b", rb, sb), nd("e3-c", ra, sb))

	e.wantIDs("claim", e.claimIDs(sa, "w1", t0, time.Minute, 10), "e1-a", "e2-a")
	e.finish("e2-a", "w1", router.Finish{
		Attempt: router.AttemptRecord{At: t0, Outcome: router.OutcomeDead, StatusCode: 404, Error: "404"},
		Status:  router.StatusDead,
	})

	all := []string{"e3-c", "e3-b", "e2-a", "e1-b", "e1-a"}
	e.wantIDs("by source", e.list(router.DeliveryFilter{Source: src}), all...)
	e.wantIDs("dead", e.list(router.DeliveryFilter{Source: src, Status: router.StatusDead}), "e2-a")
	e.wantIDs("pending", e.list(router.DeliveryFilter{Source: src, Status: router.StatusPending}), "e3-c", "e3-b", "e1-b", "e1-a")
	e.wantIDs("by sink", e.list(router.DeliveryFilter{Sink: sa}), "e2-a", "e1-a")
	e.wantIDs("by rule", e.list(router.DeliveryFilter{Rule: rb}), "e3-b", "e1-b")
	e.wantIDs("by event", e.list(router.DeliveryFilter{Source: src, EventID: "e1"}), "e1-b", "e1-a")
	e.wantIDs("limit", e.list(router.DeliveryFilter{Source: src, Limit: 2}), "e3-c", "e3-b")
	e.wantIDs("sink and rule", e.list(router.DeliveryFilter{Source: src, Sink: sb, Rule: ra}), "e3-c")
	e.wantIDs("no match", e.list(router.DeliveryFilter{Source: e.n("nope")}))

	ds, err := e.s.ListDeliveries(e.ctx, router.DeliveryFilter{Source: src, Status: router.StatusDead})
	if err != nil || len(ds) != 1 {
		e.Fatalf("ListDeliveries(dead) = %v, %v", ds, err)
	}
	if d := ds[0]; d.Attempts != 1 || d.LastError != "404" || d.EventID != "e2" || d.Source != src ||
		!d.CreatedAt.Equal(t0.Add(time.Minute)) || len(d.AttemptLog) != 0 {
		e.Errorf("listed = %+v, want e2-a after 1 attempt, without attempt log", d)
	}
}

func testListDeliveriesDefaultLimit(e *env) {
	sink := e.n("sink")
	var ds []router.NewDelivery
	for i := range 105 {
		ds = append(ds, e.delivery(fmt.Sprintf("d%03d", i), sink, t0))
	}
	e.ingest(e.event(e.n("src"), "big", t0), ds...)
	if got := e.list(router.DeliveryFilter{Sink: sink}); len(got) != 100 {
		e.Errorf("default limit: %d deliveries, want 100", len(got))
	} else if got[0] != "d104" || got[99] != "d005" {
		e.Errorf("default limit: from %s to %s, want d104 to d005", got[0], got[99])
	}
	if got := e.list(router.DeliveryFilter{Sink: sink, Limit: 200}); len(got) != 105 {
		e.Errorf("limit 200: %d deliveries, want 105", len(got))
	}
}

func testIngestCancelledContext(e *env) {
	src := e.n("src")
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := e.s.Ingest(ctx, e.event(src, "ev-1", t0), []router.NewDelivery{e.delivery("d1", e.n("sink"), t0)})
	if !errors.Is(err, context.Canceled) {
		e.Errorf("Ingest with a cancelled context: error = %v, want context.Canceled", err)
	}
	if _, err := e.s.GetEvent(e.ctx, src, "ev-1"); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("GetEvent after the cancelled Ingest: error = %v, want ErrNotFound", err)
	}
	e.wantIDs("deliveries", e.list(router.DeliveryFilter{Source: src}))
	// The store still works.
	e.ingest(e.event(src, "ev-1", t0), e.delivery("d1", e.n("sink"), t0))
}

func testConcurrentIngest(e *env) {
	const events, workers = 500, 32
	src, sa, sb := e.n("src"), e.n("sink-a"), e.n("sink-b")
	var (
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				id := fmt.Sprintf("ev-%03d", i)
				dup, err := e.s.Ingest(e.ctx, e.event(src, id, t0.Add(time.Duration(i)*time.Millisecond)),
					[]router.NewDelivery{e.delivery(id+"-a", sa, t0), e.delivery(id+"-b", sb, t0)})
				if err != nil || dup {
					e.Errorf("Ingest(%s) = %v, %v", id, dup, err)
				}
			}
		})
	}
	for i := range events {
		next <- i
	}
	close(next)
	wg.Wait()

	for i := range events {
		if _, err := e.s.GetEvent(e.ctx, src, fmt.Sprintf("ev-%03d", i)); err != nil {
			e.Fatalf("GetEvent(ev-%03d): %v", i, err)
		}
	}
	if got := e.list(router.DeliveryFilter{Source: src, Limit: 2 * events}); len(got) != 2*events {
		e.Errorf("%d deliveries, want %d", len(got), 2*events)
	}
	counts, err := e.s.PendingCounts(e.ctx, t0)
	if err != nil {
		e.Fatalf("PendingCounts: %v", err)
	}
	if counts[sa].Pending != events || counts[sb].Pending != events {
		e.Errorf("pending = %d and %d, want %d each", counts[sa].Pending, counts[sb].Pending, events)
	}
}

func testPing(e *env) {
	if err := e.s.Ping(e.ctx); err != nil {
		e.Errorf("Ping: %v", err)
	}
}

// testProbeWrite: the readiness probe's write commits, again and again,
// from several callers at once (replicas share its row), and a cancelled
// one reports its context's error rather than a success it did not have.
func testProbeWrite(e *env) {
	for i := range 3 {
		if err := e.s.ProbeWrite(e.ctx); err != nil {
			e.Fatalf("ProbeWrite %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = e.s.ProbeWrite(e.ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.Errorf("concurrent ProbeWrite %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := e.s.ProbeWrite(ctx); !errors.Is(err, context.Canceled) {
		e.Errorf("ProbeWrite with a cancelled context: error = %v, want context.Canceled", err)
	}
	// It writes nothing anyone reads: the store works as before.
	src := e.n("src")
	e.ingest(e.event(src, "ev-1", t0), e.delivery("d1", e.n("sink"), t0))
	e.wantIDs("deliveries", e.list(router.DeliveryFilter{Source: src}), "d1")
}

func testPostpone(e *env) {
	sink := e.n("sink")
	e.ingestOne("p", sink, t0)
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0, time.Minute, 1), "p")
	if err := e.s.Postpone(e.ctx, e.n("p"), "w2", t0.Add(time.Second), ""); !errors.Is(err, router.ErrLeaseLost) {
		e.Fatalf("Postpone by a stranger = %v, want ErrLeaseLost", err)
	}
	if err := e.s.Postpone(e.ctx, e.n("p"), "w1", t0.Add(time.Second), "deferred: outside business-hours"); err != nil {
		e.Fatalf("Postpone: %v", err)
	}
	e.wantIDs("claim before the new time", e.claimIDs(sink, "w2", t0.Add(500*time.Millisecond), time.Minute, 1))
	if d := e.get("p"); d.LastError != "deferred: outside business-hours" {
		e.Fatalf("a postponed delivery's LastError = %q, want the reason it waits", d.LastError)
	}
	e.wantIDs("claim at the new time", e.claimIDs(sink, "w2", t0.Add(time.Second), time.Minute, 1), "p")
	if err := e.s.Postpone(e.ctx, e.n("p"), "w2", t0.Add(2*time.Second), ""); err != nil {
		e.Fatalf("Postpone: %v", err)
	}
	if d := e.get("p"); d.Attempts != 0 || len(d.AttemptLog) != 0 || d.LastError != "deferred: outside business-hours" {
		e.Fatalf("a postponed delivery has %d attempts, %d logged, LastError %q; want none, and the reason kept by an empty why", d.Attempts, len(d.AttemptLog), d.LastError)
	}
}

func testDedupKeyLock(e *env) {
	sink, key := e.n("sink"), "chat-42"
	remote, ok, err := e.s.AcquireKey(e.ctx, sink, key, "w1", t0, time.Minute)
	if err != nil || !ok || remote.ID != "" || remote.Link != nil {
		e.Fatalf("first AcquireKey = %+v, %v, %v; want nothing recorded, true", remote, ok, err)
	}
	if _, ok, err := e.s.AcquireKey(e.ctx, sink, key, "w2", t0.Add(time.Second), time.Minute); err != nil || ok {
		e.Fatalf("AcquireKey of a held key = %v, %v; want false", ok, err)
	}
	if _, ok, _ := e.s.AcquireKey(e.ctx, e.n("other-sink"), key, "w2", t0, time.Minute); !ok {
		e.Fatal("a key is per sink: the same key on another sink must be free")
	}
	checkKeyRelease(e, sink, key)
}

// checkKeyRelease: key, held by w1 since t0 for a minute, records the
// remote id its owner releases it with, and hands it to the next owner,
// after a release or after the lock expires.
func checkKeyRelease(e *env, sink, key string) {
	if err := e.s.ReleaseKey(e.ctx, sink, key, "w2", router.RemoteObject{ID: "STRANGER"}); err != nil {
		e.Fatal(err)
	}
	link := router.Link{"url": "https://desk.example/tickets/1001", "number": "1001"}
	if err := e.s.ReleaseKey(e.ctx, sink, key, "w1", router.RemoteObject{ID: "T-1001", Link: link}); err != nil {
		e.Fatal(err)
	}
	remote, ok, err := e.s.AcquireKey(e.ctx, sink, key, "w2", t0.Add(2*time.Second), time.Minute)
	if err != nil || !ok || remote.ID != "T-1001" || !maps.Equal(remote.Link, link) {
		e.Fatalf("AcquireKey after release = %+v, %v, %v; want T-1001 with %v, true", remote, ok, err, link)
	}
	// w2 dies holding it: the lock expires.
	remote, ok, err = e.s.AcquireKey(e.ctx, sink, key, "w3", t0.Add(2*time.Minute), time.Minute)
	if err != nil || !ok || remote.ID != "T-1001" {
		e.Fatalf("AcquireKey after expiry = %+v, %v, %v; want T-1001, true", remote, ok, err)
	}
	// An empty remote id keeps the recorded object, link and all.
	if err := e.s.ReleaseKey(e.ctx, sink, key, "w3", router.RemoteObject{}); err != nil {
		e.Fatal(err)
	}
	if remote, _, _ := e.s.AcquireKey(e.ctx, sink, key, "w4", t0.Add(3*time.Minute), time.Minute); remote.ID != "T-1001" || !maps.Equal(remote.Link, link) {
		e.Fatalf("remote object after an empty release = %+v, want T-1001 with %v", remote, link)
	}
}

// testLinks: a key value's links are every sink's object for it, each with
// its id; a new object without a link clears the old one's; the same
// object without a link keeps it; another key value sees none of them.
func testLinks(e *env) {
	desk, slack, key := e.n("desk"), e.n("slack"), e.n("chat-7")
	release := func(sink, owner string, obj router.RemoteObject) {
		e.Helper()
		if _, ok, err := e.s.AcquireKey(e.ctx, sink, key, owner, t0, time.Minute); err != nil || !ok {
			e.Fatalf("AcquireKey(%s) = %v, %v", sink, ok, err)
		}
		if err := e.s.ReleaseKey(e.ctx, sink, key, owner, obj); err != nil {
			e.Fatal(err)
		}
	}
	if got, err := e.s.Links(e.ctx, key); err != nil || len(got) != 0 {
		e.Fatalf("Links of a new key = %v, %v; want none", got, err)
	}
	release(desk, "w1", router.RemoteObject{ID: "77", Link: router.Link{"url": "https://desk/77"}})
	release(slack, "w2", router.RemoteObject{ID: "1700.01", Link: router.Link{"channel": "C1", "ts": "1700.01"}})
	// A key locked but never given an object is no link.
	if _, ok, err := e.s.AcquireKey(e.ctx, e.n("jira"), key, "w3", t0, time.Minute); err != nil || !ok {
		e.Fatalf("AcquireKey(jira) = %v, %v", ok, err)
	}
	got, err := e.s.Links(e.ctx, key)
	want := map[string]router.Link{
		desk:  {"id": "77", "url": "https://desk/77"},
		slack: {"id": "1700.01", "channel": "C1", "ts": "1700.01"},
	}
	if err != nil || !maps.EqualFunc(got, want, maps.Equal) {
		e.Fatalf("Links = %v, %v; want %v", got, err, want)
	}
	release(desk, "w1", router.RemoteObject{ID: "77"})
	release(slack, "w2", router.RemoteObject{ID: "1700.02"})
	got, err = e.s.Links(e.ctx, key)
	want = map[string]router.Link{desk: {"id": "77", "url": "https://desk/77"}, slack: {"id": "1700.02"}}
	if err != nil || !maps.EqualFunc(got, want, maps.Equal) {
		e.Fatalf("Links after releases without links = %v, %v; want %v", got, err, want)
	}
	if got, err := e.s.Links(e.ctx, e.n("chat-8")); err != nil || len(got) != 0 {
		e.Fatalf("Links of another key value = %v, %v; want none", got, err)
	}
}

// testPendingFor: an event's pending deliveries to the named sinks, with
// the earliest due; delivered and dead ones, other sinks' and other
// events' do not count.
func testPendingFor(e *env) {
	src, desk, jira, slack := e.n("src"), e.n("desk"), e.n("jira"), e.n("slack")
	ev := e.event(src, "ev", t0)
	e.ingest(ev, e.delivery("d-desk", desk, t0.Add(time.Minute)), e.delivery("d-jira", jira, t0.Add(time.Second)),
		e.delivery("d-slack", slack, t0))
	e.ingest(e.event(src, "other", t0), e.delivery("o-desk", desk, t0))
	check := func(what string, sinks []string, wantDue time.Time, wantPending bool) {
		e.Helper()
		due, pending, err := e.s.PendingFor(e.ctx, src, ev.ID, sinks)
		if err != nil || pending != wantPending || !due.Equal(wantDue) {
			e.Fatalf("%s: PendingFor = %v, %v, %v; want %v, %v", what, due, pending, err, wantDue, wantPending)
		}
	}
	check("both pending", []string{desk, jira}, t0.Add(time.Second), true)
	check("one", []string{desk}, t0.Add(time.Minute), true)
	check("no such sink", []string{e.n("none")}, time.Time{}, false)
	check("no sinks", nil, time.Time{}, false)
	e.wantIDs("claim jira", e.claimIDs(jira, "w", t0.Add(time.Second), time.Minute, 1), "d-jira")
	e.finish("d-jira", "w", router.Finish{Status: router.StatusDead, Attempt: router.AttemptRecord{At: t0, Outcome: router.OutcomeDead}})
	check("jira dead", []string{desk, jira}, t0.Add(time.Minute), true)
	e.wantIDs("claim desk", e.claimIDs(desk, "w", t0.Add(time.Minute), time.Minute, 5), "o-desk", "d-desk")
	e.finish("d-desk", "w", router.Finish{Status: router.StatusDelivered, Attempt: router.AttemptRecord{At: t0, Outcome: router.OutcomeDelivered}})
	check("both done", []string{desk, jira}, time.Time{}, false)
	check("slack still pending", []string{slack, desk}, t0, true)
}

// testSetAside: a claimed delivery ends suppressed or silenced, with the
// reason and no attempt; only its lease holder may; it replays.
func testSetAside(e *env) {
	sink := e.n("sink")
	e.ingestOne("s", sink, t0)
	e.ingestOne("q", sink, t0.Add(time.Millisecond))
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0.Add(time.Millisecond), time.Minute, 2), "s", "q")
	if err := e.s.SetAside(e.ctx, e.n("s"), "w2", router.StatusSuppressed, "x", t0); !errors.Is(err, router.ErrLeaseLost) {
		e.Fatalf("SetAside by a stranger = %v, want ErrLeaseLost", err)
	}
	if err := e.s.SetAside(e.ctx, e.n("s"), "w1", router.StatusDead, "x", t0); err == nil {
		e.Fatal("SetAside as dead succeeded; only suppressed and silenced are set aside")
	}
	if err := e.s.SetAside(e.ctx, e.n("s"), "w1", router.StatusSuppressed, "suppressed by the cooldown of d-1", t0.Add(time.Second)); err != nil {
		e.Fatalf("SetAside: %v", err)
	}
	if err := e.s.SetAside(e.ctx, e.n("q"), "w1", router.StatusSilenced, "silenced by s-1", t0.Add(time.Second)); err != nil {
		e.Fatalf("SetAside: %v", err)
	}
	for id, want := range map[string]string{"s": router.StatusSuppressed, "q": router.StatusSilenced} {
		d := e.get(id)
		if d.Status != want || d.Attempts != 0 || len(d.AttemptLog) != 0 || d.LastError == "" || d.Leased {
			e.Errorf("%s: %+v; want %s, unattempted, with its reason, not leased", id, d, want)
		}
	}
	e.wantIDs("nothing to claim", e.claimIDs(sink, "w1", t0.Add(time.Hour), time.Minute, 5))
	e.wantIDs("silenced", e.list(router.DeliveryFilter{Sink: sink, Status: router.StatusSilenced}), "q")
	if err := e.s.Replay(e.ctx, e.n("q"), "ops", t0.Add(2*time.Second)); err != nil {
		e.Fatalf("Replay of a silenced delivery: %v", err)
	}
	e.wantIDs("claim the replayed", e.claimIDs(sink, "w1", t0.Add(2*time.Second), time.Minute, 5), "q")
}

// testCooldown: the first delivery takes a key's cooldown; others within
// it are told its holder, and counted; the holder asking again (a retry)
// changes nothing; after it ends the next delivery takes it, carrying the
// count; scopes and keys are apart.
func testCooldown(e *env) {
	scope, key := e.n("rule/0"), "ann@example.com"
	take := func(id string, at time.Time, wantHolder string, wantCarried int) {
		e.Helper()
		holder, carried, err := e.s.Cooldown(e.ctx, scope, key, id, at, time.Hour)
		if err != nil || holder != wantHolder || carried != wantCarried {
			e.Fatalf("Cooldown(%s at %v) = %q, %d, %v; want %q, %d", id, at.Sub(t0), holder, carried, err, wantHolder, wantCarried)
		}
	}
	take("d1", t0, "d1", 0)
	if holder, until, err := e.s.CooldownHolder(e.ctx, scope, key, t0.Add(30*time.Minute)); err != nil || holder != "d1" || !until.Equal(t0.Add(time.Hour)) {
		e.Fatalf("CooldownHolder = %q, %v, %v; want d1 until t0+1h", holder, until, err)
	}
	if holder, _, err := e.s.CooldownHolder(e.ctx, scope, key, t0.Add(time.Hour)); err != nil || holder != "" {
		e.Fatalf("CooldownHolder after the end = %q, %v; want none", holder, err)
	}
	take("d2", t0.Add(time.Minute), "d1", 0)
	take("d1", t0.Add(2*time.Minute), "d1", 0) // a retry of the holder
	take("d3", t0.Add(59*time.Minute), "d1", 0)
	take("d4", t0.Add(time.Hour), "d4", 2) // d1's ended: d2 and d3 were suppressed
	take("d4", t0.Add(time.Hour+time.Minute), "d4", 2)
	take("d5", t0.Add(90*time.Minute), "d4", 2)
	// d4 went dead: released, the next takes it at once, with d5 carried;
	// a release by another changes nothing.
	if err := e.s.ReleaseCooldown(e.ctx, scope, key, "d5", t0.Add(91*time.Minute)); err != nil {
		e.Fatal(err)
	}
	take("d6", t0.Add(91*time.Minute), "d4", 2)
	if err := e.s.ReleaseCooldown(e.ctx, scope, key, "d4", t0.Add(92*time.Minute)); err != nil {
		e.Fatal(err)
	}
	take("d7", t0.Add(92*time.Minute), "d7", 2)
	if holder, _, err := e.s.Cooldown(e.ctx, e.n("rule/1"), key, "x1", t0.Add(time.Minute), time.Hour); err != nil || holder != "x1" {
		e.Fatalf("another scope: %q, %v; want its own cooldown", holder, err)
	}
	if holder, _, err := e.s.Cooldown(e.ctx, scope, "bob@example.com", "y1", t0.Add(time.Minute), time.Hour); err != nil || holder != "y1" {
		e.Fatalf("another key: %q, %v; want its own cooldown", holder, err)
	}
}

// testSilences: silences round-trip, newest first; expiring one ends it
// at the time given unless it ended earlier; an unknown id is
// ErrNotFound. The suite's stores may hold other subtests' silences, so
// it looks only at its own.
func testSilences(e *env) {
	mine := func() map[string]*router.Silence {
		e.Helper()
		all, err := e.s.Silences(e.ctx)
		if err != nil {
			e.Fatal(err)
		}
		out := map[string]*router.Silence{}
		var order []string
		for _, s := range all {
			if strings.HasPrefix(s.ID, e.prefix) {
				out[s.ID] = s
				order = append(order, s.ID)
			}
		}
		if len(order) == 2 && order[0] != e.n("s2") {
			e.Errorf("silences in order %v; want the newest first", order)
		}
		return out
	}
	s1 := &router.Silence{ID: e.n("s1"), Matcher: `sink == "slack"`, Comment: "deploy", CreatedBy: "ops",
		CreatedAt: t0, StartsAt: t0, EndsAt: t0.Add(time.Hour)}
	s2 := &router.Silence{ID: e.n("s2"), Matcher: `rule == "sad"`, Comment: "noisy", CreatedBy: "ops",
		CreatedAt: t0.Add(time.Second), StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(2 * time.Hour)}
	for _, s := range []*router.Silence{s1, s2} {
		if err := e.s.CreateSilence(e.ctx, s); err != nil {
			e.Fatal(err)
		}
	}
	if err := e.s.CreateSilence(e.ctx, s1); err == nil {
		e.Error("a second silence with the same id was stored")
	}
	got := mine()
	if g := got[s1.ID]; g == nil || g.Matcher != s1.Matcher || g.Comment != "deploy" || g.CreatedBy != "ops" ||
		!g.StartsAt.Equal(s1.StartsAt) || !g.EndsAt.Equal(s1.EndsAt) || !g.CreatedAt.Equal(s1.CreatedAt) {
		e.Fatalf("silence read back as %+v; want %+v", g, s1)
	}
	if st := got[s2.ID].State(t0.Add(time.Minute)); st != router.SilencePending {
		e.Errorf("s2 at t0+1m is %s, want pending", st)
	}
	if err := e.s.ExpireSilence(e.ctx, s1.ID, t0.Add(10*time.Minute)); err != nil {
		e.Fatal(err)
	}
	if err := e.s.ExpireSilence(e.ctx, s1.ID, t0.Add(50*time.Minute)); err != nil {
		e.Fatal(err)
	}
	if g := mine()[s1.ID]; !g.EndsAt.Equal(t0.Add(10*time.Minute)) || g.State(t0.Add(20*time.Minute)) != router.SilenceExpired {
		e.Errorf("expired silence ends %v; want the first expiry, t0+10m", g.EndsAt)
	}
	if err := e.s.ExpireSilence(e.ctx, e.n("nope"), t0); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("ExpireSilence of an unknown id = %v, want ErrNotFound", err)
	}
}

// testGroups: the first delivery opens its group's batch and carries it,
// due after wait; the others join it; a flush closes it and returns the
// members in arrival order, again when asked again; a delivery after the
// flush opens the next batch, due no sooner than interval after the
// flush; joining twice changes nothing; groups are apart.
func testGroups(e *env) {
	scope := e.n("rule/0")
	member := func(id string, at time.Time) router.GroupMember {
		return router.GroupMember{Scope: scope, Key: "ann", Delivery: e.n(id), Source: "s", EventID: id, ReceivedAt: at}
	}
	join := func(id string, at time.Time, wantBatch string, wantFlush time.Time) {
		e.Helper()
		batch, flush, err := e.s.JoinGroup(e.ctx, member(id, at), at, 2*time.Second, time.Minute)
		if err != nil || batch != e.n(wantBatch) || !flush.Equal(wantFlush) {
			e.Fatalf("JoinGroup(%s) = %s, %v, %v; want %s, %v", id, batch, flush, err, e.n(wantBatch), wantFlush)
		}
	}
	open := func() int {
		e.Helper()
		n, err := e.s.OpenGroups(e.ctx)
		if err != nil {
			e.Fatal(err)
		}
		return n
	}
	before := open()
	join("d1", t0, "d1", t0.Add(2*time.Second))
	if n := open(); n != before+1 {
		e.Errorf("OpenGroups = %d after a batch opened; want %d", n, before+1)
	}
	join("d2", t0.Add(time.Second), "d1", t0.Add(2*time.Second))
	join("d1", t0.Add(time.Second), "d1", t0.Add(2*time.Second)) // again: the same
	for id, want := range map[string]string{"d1": e.n("d1"), "d2": e.n("d1"), "nope": ""} {
		if batch, err := e.s.GroupOf(e.ctx, e.n(id)); err != nil || batch != want {
			e.Fatalf("GroupOf(%s) = %q, %v; want %q", id, batch, err, want)
		}
	}
	other := router.GroupMember{Scope: scope, Key: "bob", Delivery: e.n("b1"), Source: "s", EventID: "b1", ReceivedAt: t0}
	if batch, _, err := e.s.JoinGroup(e.ctx, other, t0, time.Second, time.Minute); err != nil || batch != e.n("b1") {
		e.Fatalf("another key's group: %s, %v", batch, err)
	}
	ms, err := e.s.FlushGroup(e.ctx, e.n("d1"), t0.Add(2*time.Second))
	if err != nil || len(ms) != 2 || ms[0].Delivery != e.n("d1") || ms[1].Delivery != e.n("d2") || ms[1].EventID != "d2" || !ms[1].ReceivedAt.Equal(t0.Add(time.Second)) {
		e.Fatalf("FlushGroup = %+v, %v; want d1, d2", ms, err)
	}
	// The carrier asks again (a retry): the batch is closed, flush now.
	join("d1", t0.Add(3*time.Second), "d1", time.Time{})
	if again, err := e.s.FlushGroup(e.ctx, e.n("d1"), t0.Add(3*time.Second)); err != nil || len(again) != 2 {
		e.Fatalf("FlushGroup again = %+v, %v; want the same two", again, err)
	}
	// The next batch waits for the interval after the flush.
	join("d3", t0.Add(4*time.Second), "d3", t0.Add(2*time.Second+time.Minute))
	join("d4", t0.Add(5*time.Second), "d3", t0.Add(2*time.Second+time.Minute))
}

// testGroupRace: deliveries join one group from many goroutines while
// its carriers flush: every delivery lands in exactly one batch, a batch
// is never joined after its flush, and each batch's carrier is its first
// member. It pins the store's locking (a join and a flush of one group
// must take turns).
func testGroupRace(e *env) {
	scope := e.n("rule/0")
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	batchOf := map[string]string{}   // delivery → batch
	flushed := map[string][]string{} // batch → members at its first flush
	errs := make(chan error, 2*n)
	flush := func(batch string) {
		ms, err := e.s.FlushGroup(e.ctx, batch, t0)
		if err != nil {
			errs <- err
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := flushed[batch]; ok {
			return
		}
		for _, m := range ms {
			flushed[batch] = append(flushed[batch], m.Delivery)
		}
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%s-d%03d", e.prefix, i)
			m := router.GroupMember{Scope: scope, Key: "k", Delivery: id, Source: "s", EventID: id, ReceivedAt: t0.Add(time.Duration(i) * time.Microsecond)}
			batch, _, err := e.s.JoinGroup(e.ctx, m, t0, 0, 0)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			batchOf[id] = batch
			mu.Unlock()
			if batch == id && i%3 == 0 {
				flush(batch) // some carriers flush at once, racing the joins
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.Fatal(err)
	}
	// Flush what is still open, as the carriers would.
	for id, batch := range batchOf {
		if batch == id {
			flush(batch)
		}
	}
	seen := map[string]int{}
	for batch, members := range flushed {
		if batchOf[batch] != batch {
			e.Errorf("batch %s was flushed but its id joined %s", batch, batchOf[batch])
		}
		for _, m := range members {
			seen[m]++
			if batchOf[m] != batch {
				e.Errorf("%s joined %s but was flushed with %s", m, batchOf[m], batch)
			}
		}
	}
	for id := range batchOf {
		if seen[id] != 1 {
			e.Errorf("%s is in %d flushed batches; want 1", id, seen[id])
		}
	}
	if len(batchOf) != n {
		e.Errorf("%d deliveries joined; want %d", len(batchOf), n)
	}

	// With no flush among them, concurrent joins make one batch: two
	// would be two digests where one was due.
	quiet := e.n("rule/1")
	// The group exists, flushed: its row is there, with no open batch, as
	// for every group after its first digest.
	prime := e.prefix + "-prime"
	if _, _, err := e.s.JoinGroup(e.ctx, router.GroupMember{Scope: quiet, Key: "k", Delivery: prime, Source: "s", EventID: prime, ReceivedAt: t0}, t0, 0, 0); err != nil {
		e.Fatal(err)
	}
	if _, err := e.s.FlushGroup(e.ctx, prime, t0); err != nil {
		e.Fatal(err)
	}
	batches := make([]string, 50)
	var qwg sync.WaitGroup
	for i := range batches {
		qwg.Add(1)
		go func() {
			defer qwg.Done()
			id := fmt.Sprintf("%s-q%02d", e.prefix, i)
			b, _, err := e.s.JoinGroup(e.ctx, router.GroupMember{Scope: quiet, Key: "k", Delivery: id, Source: "s", EventID: id, ReceivedAt: t0}, t0, time.Minute, 0)
			if err != nil {
				e.Error(err)
			}
			batches[i] = b
		}()
	}
	qwg.Wait()
	for _, b := range batches {
		if b != batches[0] {
			e.Fatalf("concurrent joins made batches %v; want one", batches)
		}
	}
}

// testCooldownRace: many deliveries take one cooldown at once: exactly
// one holds it, and the others are all told that one.
func testCooldownRace(e *env) {
	scope := e.n("rule/0")
	const n = 50
	holders := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, _, err := e.s.Cooldown(e.ctx, scope, "k", fmt.Sprintf("d%02d", i), t0, time.Hour)
			if err != nil {
				e.Error(err)
			}
			holders[i] = h
		}()
	}
	wg.Wait()
	for _, h := range holders {
		if h != holders[0] {
			e.Fatalf("holders %v; want one holder for all", holders)
		}
	}
}

// testTimers: deliveries stored with a timer key wait, unclaimable,
// until FireTimers makes them pending at their time; CancelTimers cancels
// a timer's waiting deliveries, with the cancelling event's id, and
// nothing else.
func testTimers(e *env) {
	sink := e.n("sink")
	waiting := func(id, key string, due time.Time) router.NewDelivery {
		d := e.delivery(id, sink, due)
		d.TimerKey = key
		return d
	}
	e.ingest(e.event(e.n("src"), "a", t0), waiting("a1", e.n("rule/a"), t0.Add(3*time.Second)), waiting("a2", e.n("rule/a"), t0.Add(time.Minute)))
	e.ingest(e.event(e.n("src"), "b", t0), waiting("b1", e.n("rule/b"), t0.Add(3*time.Second)))
	e.wantIDs("nothing claimable while waiting", e.claimIDs(sink, "w", t0.Add(time.Hour), time.Minute, 5))
	if d := e.get("a1"); d.Status != router.StatusWaiting {
		e.Fatalf("a1 is %s, want waiting", d.Status)
	}
	if n, err := e.s.CancelTimers(e.ctx, e.n("rule/b"), "conversation.attended:b", t0.Add(time.Second)); err != nil || n != 1 {
		e.Fatalf("CancelTimers(b) = %d, %v; want 1", n, err)
	}
	if d := e.get("b1"); d.Status != router.StatusCancelled || d.LastError != "cancelled by event conversation.attended:b" {
		e.Fatalf("b1: %s %q; want cancelled, naming the event", d.Status, d.LastError)
	}
	if fired, err := e.s.FireTimers(e.ctx, t0.Add(2*time.Second), 10); err != nil || len(fired) != 0 {
		e.Fatalf("FireTimers before any is due = %v, %v", fired, err)
	}
	fired, err := e.s.FireTimers(e.ctx, t0.Add(3*time.Second), 10)
	if err != nil || len(fired) != 1 || fired[0].ID != e.n("a1") || fired[0].Sink != sink {
		e.Fatalf("FireTimers at 3s = %+v, %v; want a1 alone (b1 is cancelled, a2 not due)", fired, err)
	}
	e.wantIDs("the fired one is claimable", e.claimIDs(sink, "w", t0.Add(3*time.Second), time.Minute, 5), "a1")
	// a2 still waits; a cancel now cancels it and not the fired a1.
	if n, err := e.s.CancelTimers(e.ctx, e.n("rule/a"), "x", t0.Add(4*time.Second)); err != nil || n != 1 {
		e.Fatalf("CancelTimers(a) = %d, %v; want 1 (a2)", n, err)
	}
	if d := e.get("a2"); d.Status != router.StatusCancelled {
		e.Errorf("a2 is %s, want cancelled", d.Status)
	}
	e.wantIDs("cancelled", e.list(router.DeliveryFilter{Sink: sink, Status: router.StatusCancelled}), "b1", "a2")
}

// testTimerRace: for each of 2,000 deliveries, a fire and a cancel start
// at the same instant: each delivery ends fired or cancelled, exactly one
// of the two, whichever won.
func testTimerRace(e *env) {
	sink := e.n("sink")
	const n = 2000
	due := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Microsecond) }
	for i := range n {
		id := fmt.Sprintf("t%04d", i)
		d := e.delivery(id, sink, due(i))
		d.TimerKey = e.n("k" + id)
		e.ingest(e.event(e.n("src"), id, t0), d)
	}
	fired, cancelled := 0, 0
	for i := range n {
		id := fmt.Sprintf("t%04d", i)
		var f []router.FiredTimer
		var c int
		var ferr, cerr error
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-start; f, ferr = e.s.FireTimers(e.ctx, due(i), 1) }()
		go func() { defer wg.Done(); <-start; c, cerr = e.s.CancelTimers(e.ctx, e.n("k"+id), "x", due(i)) }()
		close(start)
		wg.Wait()
		if ferr != nil || cerr != nil {
			e.Fatalf("%s: fire %v, cancel %v", id, ferr, cerr)
		}
		if len(f) > 1 || len(f) == 1 && f[0].ID != e.n(id) {
			e.Fatalf("%s: fired %+v; want at most this one", id, f)
		}
		if len(f)+c != 1 {
			e.Fatalf("%s: fired %d, cancelled %d; want exactly one outcome", id, len(f), c)
		}
		want := router.StatusPending
		if c == 1 {
			want = router.StatusCancelled
			cancelled++
		} else {
			fired++
		}
		if i%97 == 0 { // the store agrees (a sample: a read each would double the run)
			if d := e.get(id); d.Status != want {
				e.Fatalf("%s is %s; want %s", id, d.Status, want)
			}
		}
	}
	e.Logf("%d fired, %d cancelled", fired, cancelled)
}

func testDedupKeyRace(e *env) {
	sink := e.n("sink")
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := e.s.AcquireKey(e.ctx, sink, "k", fmt.Sprintf("w%d", i), t0, time.Minute)
			if err != nil {
				e.Errorf("AcquireKey: %v", err)
			}
			if ok {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		e.Fatalf("%d owners hold one key at once, want 1", winners)
	}
}

// soleWinner checks the outcome of ingests racing to store one event:
// none failed, and exactly one stored it (reported no duplicate). It
// returns that one's index.
func (e *env) soleWinner(dups []bool, errs []error) int {
	e.Helper()
	winner := -1
	for g := range dups {
		if errs[g] != nil {
			e.Fatalf("Ingest %d: %v", g, errs[g])
		}
		if !dups[g] {
			if winner >= 0 {
				e.Fatalf("Ingest %d and %d both stored the event", winner, g)
			}
			winner = g
		}
	}
	if winner < 0 {
		e.Fatalf("every Ingest reported duplicate")
	}
	return winner
}

// testTimersList: Timers lists the waiting timers, one per key and first
// event (two events with equal same: values are two timers under one
// key), earliest due first, with their waiting deliveries and the
// event's name and time; fired and cancelled deliveries drop out.
// CancelTimer cancels one event's timer and not the other under its key,
// naming who; WaitingTimers counts the waiting deliveries.
func testTimersList(e *env) {
	src, sink := e.n("src"), e.n("sink")
	key, other := `["`+e.n("rule")+`","chat 1"]`, `["`+e.n("rule")+`","chat 2"]`
	waiting := func(id, key string, due time.Time) router.NewDelivery {
		d := e.delivery(id, sink, due)
		d.TimerKey = key
		return d
	}
	count := func() int {
		e.Helper()
		n, err := e.s.WaitingTimers(e.ctx)
		if err != nil {
			e.Fatalf("WaitingTimers: %v", err)
		}
		return n
	}
	// Ours, among whatever a shared database holds.
	timers := func() []router.Timer {
		e.Helper()
		all, err := e.s.Timers(e.ctx)
		if err != nil {
			e.Fatalf("Timers: %v", err)
		}
		var out []router.Timer
		for _, t := range all {
			if t.Source == src {
				out = append(out, t)
			}
		}
		return out
	}
	before := count()
	e.ingest(e.event(src, "a", t0), waiting("a1", key, t0.Add(3*time.Second)), waiting("a2", key, t0.Add(time.Minute)))
	e.ingest(e.event(src, "b", t0.Add(time.Second)), waiting("b1", key, t0.Add(2*time.Second)))
	e.ingest(e.event(src, "c", t0), waiting("c1", other, t0.Add(10*time.Second)))
	e.ingest(e.event(src, "d", t0), e.delivery("d1", sink, t0)) // pending: no timer
	if n := count(); n != before+4 {
		e.Errorf("WaitingTimers = %d after four waiting deliveries, want %d", n, before+4)
	}
	if _, err := e.s.CancelTimers(e.ctx, other, "x", t0); err != nil {
		e.Fatal(err)
	}
	got := timers()
	if len(got) != 2 {
		e.Fatalf("Timers = %+v; want b's and a's (c's is cancelled, d's is no timer)", got)
	}
	b, a := got[0], got[1]
	if b.EventID != "b" || a.EventID != "a" {
		e.Fatalf("Timers in the order %s, %s; want b (due at 2s) before a (due at 3s)", b.EventID, a.EventID)
	}
	if a.ID != router.TimerID(key, src, "a") || b.ID != router.TimerID(key, src, "b") || a.ID == b.ID || !strings.HasPrefix(a.ID, "t_") || len(a.ID) != 18 {
		e.Errorf("ids %q and %q; want TimerID of the key and each event", a.ID, b.ID)
	}
	if a.Key != key || a.Rule != e.n("rule") || a.Source != src || a.EventName != "conversation.rated" ||
		!a.StartedAt.Equal(t0) || !a.Due.Equal(t0.Add(3*time.Second)) || !b.StartedAt.Equal(t0.Add(time.Second)) {
		e.Errorf("a's timer = %+v", a)
	}
	wantDs := func(what string, got []router.TimerDelivery, want ...router.TimerDelivery) {
		e.Helper()
		ok := len(got) == len(want)
		for i := 0; ok && i < len(got); i++ {
			ok = got[i].ID == e.n(want[i].ID) && got[i].Sink == sink && got[i].Due.Equal(want[i].Due)
		}
		if !ok {
			e.Errorf("%s' deliveries = %+v, want %+v", what, got, want)
		}
	}
	wantDs("a", a.Deliveries, router.TimerDelivery{ID: "a1", Due: t0.Add(3 * time.Second)}, router.TimerDelivery{ID: "a2", Due: t0.Add(time.Minute)})
	wantDs("b", b.Deliveries, router.TimerDelivery{ID: "b1", Due: t0.Add(2 * time.Second)})

	// b's timer alone: a's, under the same key, keeps waiting.
	if n, err := e.s.CancelTimer(e.ctx, key, src, "b", "operator ops", t0.Add(time.Second)); err != nil || n != 1 {
		e.Fatalf("CancelTimer(b) = %d, %v; want 1", n, err)
	}
	if d := e.get("b1"); d.Status != router.StatusCancelled || d.LastError != "cancelled by operator ops" {
		e.Errorf("b1: %s %q; want cancelled, naming the operator", d.Status, d.LastError)
	}
	if d := e.get("a1"); d.Status != router.StatusWaiting {
		e.Errorf("a1 is %s after b's timer was cancelled, want waiting", d.Status)
	}
	if n, err := e.s.CancelTimer(e.ctx, key, src, "b", "operator ops", t0.Add(time.Second)); err != nil || n != 0 {
		e.Errorf("CancelTimer(b) again = %d, %v; want 0", n, err)
	}
	// a1 fires: a's timer is left with a2, due later.
	if _, err := e.s.FireTimers(e.ctx, t0.Add(3*time.Second), 100); err != nil {
		e.Fatal(err)
	}
	got = timers()
	if len(got) != 1 || got[0].ID != a.ID || !got[0].Due.Equal(t0.Add(time.Minute)) {
		e.Fatalf("Timers after a1 fired = %+v; want a's alone, due at a2's time", got)
	}
	wantDs("a after a1 fired", got[0].Deliveries, router.TimerDelivery{ID: "a2", Due: t0.Add(time.Minute)})
	if n, err := e.s.CancelTimer(e.ctx, key, src, "a", "operator ops", t0.Add(4*time.Second)); err != nil || n != 1 {
		e.Fatalf("CancelTimer(a) = %d, %v; want 1 (a2; a1 fired)", n, err)
	}
	if d := e.get("a1"); d.Status != router.StatusPending {
		e.Errorf("a1 is %s; a cancel after it fired must leave it pending", d.Status)
	}
	if got := timers(); len(got) != 0 {
		e.Errorf("Timers after every one ended = %+v", got)
	}
	if n := count(); n != before {
		e.Errorf("WaitingTimers = %d at the end, want %d", n, before)
	}
}
