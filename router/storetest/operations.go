package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hookroute/hookroute/router"
)

// The operator's side of the store: listings with filters and cursors,
// replays, retention, paused sinks.

// tp is the Prune subtest's "now": years before t0 and before any wall
// clock the suite runs under, so that in a shared database no other
// subtest has anything that old.
var tp = time.Date(2011, 3, 4, 5, 6, 7, 891011000, time.UTC)

// Time windows of the listings that are not narrowed by a namespaced name,
// one per subtest, away from t0 and from each other.
var (
	tFilters = t0.Add(-7 * 24 * time.Hour)
	tEvents  = t0.Add(-9 * 24 * time.Hour)
)

// delivered, retry and dead are typical attempts at at.
func delivered(at time.Time) router.Finish {
	return router.Finish{
		Attempt: router.AttemptRecord{At: at, Duration: 20 * time.Millisecond, Outcome: router.OutcomeDelivered, StatusCode: 200},
		Status:  router.StatusDelivered,
	}
}

func retry(at, next time.Time) router.Finish {
	return router.Finish{
		Attempt: router.AttemptRecord{At: at, Duration: 30 * time.Millisecond, Outcome: router.OutcomeRetry,
			StatusCode: 503, Error: "503 Service Unavailable"},
		Status: router.StatusPending, NextAttemptAt: next,
	}
}

func dead(at time.Time) router.Finish {
	return router.Finish{
		Attempt: router.AttemptRecord{At: at, Duration: 40 * time.Millisecond, Outcome: router.OutcomeDead,
			StatusCode: 400, Error: "400 Bad Request"},
		Status: router.StatusDead,
	}
}

// replay replays a delivery and fails the test on error.
func (e *env) replay(id, by string, at time.Time) {
	e.Helper()
	if err := e.s.Replay(e.ctx, e.n(id), by, at); err != nil {
		e.Fatalf("Replay(%s): %v", id, err)
	}
}

func (e *env) listEvents(f router.EventFilter) []*router.EventRecord {
	e.Helper()
	evs, err := e.s.ListEvents(e.ctx, f)
	if err != nil {
		e.Fatalf("ListEvents(%+v): %v", f, err)
	}
	return evs
}

// eventKeys names events as source/id, without the prefix.
func (e *env) eventKeys(evs []*router.EventRecord) []string {
	out := []string{}
	for _, ev := range evs {
		out = append(out, strings.TrimPrefix(ev.Source, e.prefix+"-")+"/"+ev.ID)
	}
	return out
}

func (e *env) pendingCounts(now time.Time) map[string]router.PendingStat {
	e.Helper()
	got, err := e.s.PendingCounts(e.ctx, now)
	if err != nil {
		e.Fatalf("PendingCounts: %v", err)
	}
	return got
}

func testDeliveryFields(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	if d := e.get("d1"); d.Leased || d.Replays != 0 || d.ReplayedBy != "" || !d.ReplayedAt.IsZero() {
		e.Errorf("fresh delivery = %+v, want not leased, never replayed", d)
	}
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0, time.Minute, 1), "d1")
	if d := e.get("d1"); !d.Leased {
		e.Errorf("claimed delivery: Leased = false, want true")
	}
	ds, err := e.s.ListDeliveries(e.ctx, router.DeliveryFilter{Sink: sink})
	if err != nil || len(ds) != 1 {
		e.Fatalf("ListDeliveries = %v, %v", ds, err)
	}
	if !ds[0].Leased || ds[0].Replays != 0 || !ds[0].ReplayedAt.IsZero() {
		e.Errorf("listed claimed delivery = %+v, want leased, never replayed", ds[0])
	}
	e.finish("d1", "w1", retry(t0, t0.Add(time.Minute)))
	if d := e.get("d1"); d.Leased {
		e.Errorf("delivery waiting for a retry: Leased = true, want false")
	}
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0.Add(time.Minute), time.Minute, 1), "d1")
	e.finish("d1", "w1", delivered(t0.Add(time.Minute)))
	if d := e.get("d1"); d.Leased {
		e.Errorf("delivered delivery: Leased = true, want false")
	}
}

func testListDeliveriesFilters(e *env) {
	tb := tFilters
	src, src2 := e.n("src"), e.n("src2")
	sa, sb := e.n("sink-a"), e.n("sink-b")
	ra, rb := e.n("rule-a"), e.n("rule-b")
	nd := func(id, rule, sink string) router.NewDelivery {
		return router.NewDelivery{ID: e.n(id), Rule: rule, Sink: sink, NextAttemptAt: tb}
	}
	e.ingest(e.event(src, "e0", tb), nd("e0-a", ra, sa))
	e.ingest(e.event(src, "e1", tb.Add(time.Minute)), nd("e1-a", ra, sa), nd("e1-b", rb, sb))
	e.ingest(e.event(src2, "e2", tb.Add(2*time.Minute)), nd("e2-b", rb, sb))
	e.ingest(e.event(src, "e3", tb.Add(3*time.Minute)), nd("e3-a", rb, sa))

	e.wantIDs("claim", e.claimIDs(sa, "w1", tb.Add(3*time.Minute), time.Minute, 10), "e0-a", "e1-a", "e3-a")
	e.finish("e0-a", "w1", delivered(tb.Add(3*time.Minute)))
	e.finish("e1-a", "w1", dead(tb.Add(3*time.Minute)))
	// e3-a stays in flight: still pending.

	window := func(f router.DeliveryFilter) router.DeliveryFilter {
		f.Since, f.Until = tb, tb.Add(4*time.Minute)
		return f
	}
	for _, tc := range []struct {
		name string
		f    router.DeliveryFilter
		want []string
	}{
		{"window", window(router.DeliveryFilter{}), []string{"e3-a", "e2-b", "e1-b", "e1-a", "e0-a"}},
		{"since is inclusive, until exclusive",
			router.DeliveryFilter{Since: tb.Add(time.Minute), Until: tb.Add(3 * time.Minute)},
			[]string{"e2-b", "e1-b", "e1-a"}},
		{"since == until", router.DeliveryFilter{Since: tb.Add(time.Minute), Until: tb.Add(time.Minute)}, nil},
		{"source since", router.DeliveryFilter{Source: src, Since: tb.Add(time.Minute)}, []string{"e3-a", "e1-b", "e1-a"}},
		{"sink until", router.DeliveryFilter{Sink: sa, Until: tb.Add(time.Minute)}, []string{"e0-a"}},
		{"dead", window(router.DeliveryFilter{Status: router.StatusDead}), []string{"e1-a"}},
		{"delivered", window(router.DeliveryFilter{Status: router.StatusDelivered}), []string{"e0-a"}},
		{"pending", window(router.DeliveryFilter{Status: router.StatusPending}), []string{"e3-a", "e2-b", "e1-b"}},
		{"unknown status", window(router.DeliveryFilter{Status: "bogus"}), nil},
		{"dead of a sink", router.DeliveryFilter{Status: router.StatusDead, Sink: sa}, []string{"e1-a"}},
		{"dead of another sink", router.DeliveryFilter{Status: router.StatusDead, Sink: sb}, nil},
		{"pending of a rule", router.DeliveryFilter{Status: router.StatusPending, Rule: rb}, []string{"e3-a", "e2-b", "e1-b"}},
		{"sink and rule", router.DeliveryFilter{Sink: sb, Rule: rb}, []string{"e2-b", "e1-b"}},
		{"rule", router.DeliveryFilter{Rule: ra}, []string{"e1-a", "e0-a"}},
		{"other source", router.DeliveryFilter{Source: src2}, []string{"e2-b"}},
		{"event", router.DeliveryFilter{Source: src, EventID: "e1"}, []string{"e1-b", "e1-a"}},
		{"after, tie on time", window(router.DeliveryFilter{After: &router.Cursor{At: tb.Add(time.Minute), ID: e.n("e1-b")}}),
			[]string{"e1-a", "e0-a"}},
		{"after and sink", router.DeliveryFilter{Sink: sa, After: &router.Cursor{At: tb.Add(3 * time.Minute), ID: e.n("e3-a")}},
			[]string{"e1-a", "e0-a"}},
		{"after and since", router.DeliveryFilter{Source: src, Since: tb.Add(time.Minute), After: &router.Cursor{At: tb.Add(time.Minute), ID: e.n("e1-b")}},
			[]string{"e1-a"}},
		{"after, limit", window(router.DeliveryFilter{Limit: 2, After: &router.Cursor{At: tb.Add(2 * time.Minute), ID: e.n("e2-b")}}),
			[]string{"e1-b", "e1-a"}},
		{"after the last", window(router.DeliveryFilter{After: &router.Cursor{At: tb, ID: e.n("e0-a")}}), nil},
	} {
		e.wantIDs(tc.name, e.list(tc.f), tc.want...)
	}
}

// testListDeliveriesPaging pages through 250 deliveries, 100 at a time.
// Three events share each timestamp, so runs of 15 deliveries have one
// CreatedAt and the pages end inside a run; ids are numbered in an order
// unrelated to the ingest order.
func testListDeliveriesPaging(e *env) {
	const events, perEvent, page = 50, 5, 100
	sink, src := e.n("sink"), e.n("src")
	type item struct {
		at time.Time
		id string
	}
	var want []item
	for ev := range events {
		at := t0.Add(time.Duration(ev/3) * time.Second)
		var ds []router.NewDelivery
		for k := range perEvent {
			id := fmt.Sprintf("d%03d", ((ev*perEvent+k)*37)%(events*perEvent))
			ds = append(ds, e.delivery(id, sink, at))
			want = append(want, item{at, id})
		}
		e.ingest(e.event(src, fmt.Sprintf("ev%02d", ev), at), ds...)
	}
	slices.SortFunc(want, func(a, b item) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	var wantIDs []string
	for _, it := range want {
		wantIDs = append(wantIDs, it.id)
	}

	var (
		got   []string
		sizes []int
		f     = router.DeliveryFilter{Sink: sink, Limit: page}
	)
	for range 10 {
		ds, err := e.s.ListDeliveries(e.ctx, f)
		if err != nil {
			e.Fatalf("ListDeliveries(%+v): %v", f, err)
		}
		sizes = append(sizes, len(ds))
		got = append(got, e.listIDs(ds)...)
		if len(ds) < page {
			break
		}
		last := ds[len(ds)-1]
		f.After = &router.Cursor{At: last.CreatedAt, ID: last.ID}
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		e.Errorf("page sizes = %v, want [100 100 50]", sizes)
	}
	e.wantIDs("paged deliveries", got, wantIDs...)

	// The same walk through a default-sized page of one status.
	got = nil
	f = router.DeliveryFilter{Sink: sink, Status: router.StatusPending}
	for range 10 {
		ds, err := e.s.ListDeliveries(e.ctx, f)
		if err != nil {
			e.Fatalf("ListDeliveries(%+v): %v", f, err)
		}
		got = append(got, e.listIDs(ds)...)
		if len(ds) < 100 {
			break
		}
		last := ds[len(ds)-1]
		f.After = &router.Cursor{At: last.CreatedAt, ID: last.ID}
	}
	e.wantIDs("paged pending deliveries", got, wantIDs...)
}

func testListEvents(e *env) {
	te := tEvents
	src, src2 := e.n("src"), e.n("src2")
	ev1 := e.event(src, "a", te)
	ev2 := e.event(src, "b", te.Add(time.Minute))
	ev2.Name = "chat.ended"
	ev2.Quarantined = true
	ev2.Matched = nil
	ev3 := e.event(src2, "a", te.Add(time.Minute)) // ties with ev2 on time: src2 > src
	ev4 := e.event(src, "c", te.Add(2*time.Minute))
	ev4.Headers = map[string]string{"x-one": "1", "x-two": "2"}
	e.ingest(ev1, e.delivery("d1", e.n("sink"), te))
	e.ingest(ev2)
	e.ingest(ev3)
	e.ingest(ev4, e.delivery("d4", e.n("sink"), te))

	window := func(f router.EventFilter) router.EventFilter {
		f.Since, f.Until = te, te.Add(3*time.Minute)
		return f
	}
	all := e.listEvents(window(router.EventFilter{}))
	e.wantIDs("window", e.eventKeys(all), "src/c", "src2/a", "src/b", "src/a")
	for i, want := range []*router.EventRecord{ev4, ev3, ev2, ev1} {
		if i >= len(all) {
			break
		}
		got := all[i]
		if len(got.Body) != 0 {
			e.Errorf("listed %s/%s has a body of %d bytes, want none", got.Source, got.ID, len(got.Body))
		}
		w := *want
		w.Body = nil
		checkEvent(e.T, got, &w)
	}

	for _, tc := range []struct {
		name string
		f    router.EventFilter
		want []string
	}{
		{"source", router.EventFilter{Source: src}, []string{"src/c", "src/b", "src/a"}},
		{"other source", router.EventFilter{Source: src2}, []string{"src2/a"}},
		{"source and name", router.EventFilter{Source: src, Name: "chat.ended"}, []string{"src/b"}},
		{"name", window(router.EventFilter{Name: "conversation.rated"}), []string{"src/c", "src2/a", "src/a"}},
		{"since is inclusive, until exclusive",
			router.EventFilter{Since: te.Add(time.Minute), Until: te.Add(2 * time.Minute)}, []string{"src2/a", "src/b"}},
		{"source since", router.EventFilter{Source: src, Since: te.Add(time.Minute)}, []string{"src/c", "src/b"}},
		{"source until", router.EventFilter{Source: src, Until: te.Add(time.Minute)}, []string{"src/a"}},
		{"limit", router.EventFilter{Source: src, Limit: 2}, []string{"src/c", "src/b"}},
		{"after", router.EventFilter{Source: src, After: &router.Cursor{At: te.Add(time.Minute), Source: src, ID: "b"}},
			[]string{"src/a"}},
		{"after, tie broken by source", window(router.EventFilter{After: &router.Cursor{At: te.Add(time.Minute), Source: src2, ID: "a"}}),
			[]string{"src/b", "src/a"}},
		{"after, tie broken by id", window(router.EventFilter{After: &router.Cursor{At: te.Add(time.Minute), Source: src, ID: "c"}}),
			[]string{"src/b", "src/a"}},
		{"after the last", window(router.EventFilter{After: &router.Cursor{At: te, Source: src, ID: "a"}}), nil},
		{"no match", router.EventFilter{Source: e.n("nope")}, nil},
	} {
		e.wantIDs(tc.name, e.eventKeys(e.listEvents(tc.f)), tc.want...)
	}
}

// testListEventsPaging pages through 250 events, 100 at a time. Runs of 7
// share a timestamp and mix two sources, so the order within a run rests on
// source, then id, and pages end inside runs.
func testListEventsPaging(e *env) {
	const events, page, workers = 250, 100, 8
	name := e.n("paging") // isolates the subtest's events in a shared database
	srcs := []string{e.n("src-a"), e.n("src-b")}
	type item struct {
		at      time.Time
		src, id string
	}
	want := make([]item, events)
	for i := range events {
		want[i] = item{
			at:  t0.Add(time.Duration(i/7) * time.Second),
			src: srcs[(i*3/5)%2],
			id:  fmt.Sprintf("ev%03d", (i*37)%events),
		}
	}
	var wg sync.WaitGroup
	next := make(chan item)
	for range workers {
		wg.Go(func() {
			for it := range next {
				ev := e.event(it.src, it.id, it.at)
				ev.Name = name
				if dup, err := e.s.Ingest(e.ctx, ev, nil); err != nil || dup {
					e.Errorf("Ingest(%s/%s) = %v, %v", it.src, it.id, dup, err)
				}
			}
		})
	}
	for _, it := range want {
		next <- it
	}
	close(next)
	wg.Wait()
	if e.Failed() {
		return
	}

	slices.SortFunc(want, func(a, b item) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		if c := strings.Compare(b.src, a.src); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	var wantKeys []string
	for _, it := range want {
		wantKeys = append(wantKeys, strings.TrimPrefix(it.src, e.prefix+"-")+"/"+it.id)
	}
	var (
		got   []string
		sizes []int
		f     = router.EventFilter{Name: name, Limit: page}
	)
	for range 10 {
		evs := e.listEvents(f)
		sizes = append(sizes, len(evs))
		got = append(got, e.eventKeys(evs)...)
		if len(evs) < page {
			break
		}
		last := evs[len(evs)-1]
		f.After = &router.Cursor{At: last.ReceivedAt, Source: last.Source, ID: last.ID}
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		e.Errorf("page sizes = %v, want [100 100 50]", sizes)
	}
	e.wantIDs("paged events", got, wantKeys...)
}

// testReplay replays a dead delivery, delivers it, replays it again: the
// attempt budget starts over each time, the log keeps every attempt.
func testReplay(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0, time.Minute, 1), "d1")
	a1 := retry(t0, t0.Add(time.Minute))
	e.finish("d1", "w1", a1)
	e.wantIDs("claim", e.claimIDs(sink, "w2", t0.Add(time.Minute), time.Minute, 1), "d1")
	a2 := dead(t0.Add(time.Minute))
	e.finish("d1", "w2", a2)
	log := []router.AttemptRecord{a1.Attempt, a2.Attempt}

	at := t0.Add(time.Hour)
	replayDead(e, at, log)
	a3 := deliverReplayed(e, sink, at)
	log = append(log, a3.Attempt)
	checkAttempts(e.T, e.get("d1").AttemptLog, log)

	// A delivered one can be replayed too.
	at2 := at.Add(2 * time.Hour)
	a4 := replayDelivered(e, sink, at2)
	checkAttempts(e.T, e.get("d1").AttemptLog, append(log, a4.Attempt))
	ds, err := e.s.ListDeliveries(e.ctx, router.DeliveryFilter{Sink: sink})
	if err != nil || len(ds) != 1 {
		e.Fatalf("ListDeliveries = %v, %v", ds, err)
	}
	if l := ds[0]; l.Replays != 2 || l.ReplayedBy != "bob" || !l.ReplayedAt.Equal(at2) || l.Leased {
		e.Errorf("listed = %+v, want replayed twice, last by bob at %v", l, at2)
	}

	if err := e.s.Replay(e.ctx, e.n("missing"), "alice", at); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("Replay of an unknown delivery: error = %v, want ErrNotFound", err)
	}
}

// replayDead has alice replay d1, dead after the attempts in log, at at:
// it is due again at once with a fresh budget, its last error and its log
// kept.
func replayDead(e *env, at time.Time, log []router.AttemptRecord) {
	e.replay("d1", "alice", at)
	d := e.get("d1")
	if d.Status != router.StatusPending || d.Attempts != 0 || !d.NextAttemptAt.Equal(at) ||
		d.LastError != log[len(log)-1].Error || d.Replays != 1 || d.ReplayedBy != "alice" ||
		!d.ReplayedAt.Equal(at) || d.Leased {
		e.Errorf("after Replay: %+v, want pending, 0 attempts, due at %v, last error kept, replayed once by alice at %v", d, at, at)
	}
	checkAttempts(e.T, d.AttemptLog, log)
}

// deliverReplayed claims d1, replayed to be due at at, and delivers it,
// checking on the way that a replay of a delivery in flight is refused. It
// returns the attempt that delivered it.
func deliverReplayed(e *env, sink string, at time.Time) router.Finish {
	e.wantIDs("claim before the replay is due", e.claimIDs(sink, "w3", at.Add(-time.Second), time.Minute, 1))
	cs := e.claim(sink, "w3", at, time.Minute, 1)
	e.wantIDs("claim of the replayed delivery", e.ids(cs), "d1")
	if len(cs) == 1 && cs[0].Attempts != 0 {
		e.Errorf("claimed Attempts = %d, want 0 after a replay", cs[0].Attempts)
	}
	if err := e.s.Replay(e.ctx, e.n("d1"), "bob", at.Add(time.Second)); !errors.Is(err, router.ErrBusy) {
		e.Errorf("Replay of a delivery in flight: error = %v, want ErrBusy", err)
	}
	if d := e.get("d1"); !d.Leased || d.Replays != 1 || d.ReplayedBy != "alice" {
		e.Errorf("after a refused Replay: %+v, want it unchanged, leased", d)
	}
	a3 := delivered(at)
	a3.Attempt.RemoteID = "R-1"
	e.finish("d1", "w3", a3)
	if d := e.get("d1"); d.Status != router.StatusDelivered || d.Attempts != 1 || d.Replays != 1 {
		e.Errorf("delivered after the replay: %+v, want delivered after 1 attempt", d)
	}
	return a3
}

// replayDelivered has bob replay d1, delivered, at at, and lets its one new
// attempt fail for good. It returns that attempt.
func replayDelivered(e *env, sink string, at time.Time) router.Finish {
	e.replay("d1", "bob", at)
	d := e.get("d1")
	if d.Status != router.StatusPending || d.Attempts != 0 || d.Replays != 2 || d.ReplayedBy != "bob" ||
		!d.ReplayedAt.Equal(at) || !d.NextAttemptAt.Equal(at) {
		e.Errorf("after the second Replay: %+v, want pending, replayed twice, last by bob at %v", d, at)
	}
	e.wantIDs("claim after the second replay", e.claimIDs(sink, "w4", at, time.Minute, 1), "d1")
	a4 := dead(at)
	e.finish("d1", "w4", a4)
	if d := e.get("d1"); d.Status != router.StatusDead || d.Attempts != 1 {
		e.Errorf("dead after the second replay: %+v, want dead after 1 attempt", d)
	}
	return a4
}

// testReplayPending: a pending delivery that is not in flight (waiting for
// a retry) can be replayed, which makes it due at once with a fresh budget.
func testReplayPending(e *env) {
	sink := e.n("sink")
	e.ingestOne("d1", sink, t0)
	e.wantIDs("claim", e.claimIDs(sink, "w1", t0, time.Minute, 1), "d1")
	e.finish("d1", "w1", retry(t0, t0.Add(24*time.Hour)))
	e.replay("d1", "carol", t0.Add(time.Minute))
	cs := e.claim(sink, "w2", t0.Add(time.Minute), time.Minute, 1)
	e.wantIDs("claim after the replay", e.ids(cs), "d1")
	if len(cs) == 1 && cs[0].Attempts != 0 {
		e.Errorf("claimed Attempts = %d, want 0 after a replay", cs[0].Attempts)
	}
	e.finish("d1", "w2", delivered(t0.Add(time.Minute)))
	if d := e.get("d1"); d.Attempts != 1 || len(d.AttemptLog) != 2 || d.Replays != 1 {
		e.Errorf("after the replay: %+v, want 1 attempt, 2 logged, 1 replay", d)
	}
}

func testPendingCountsDead(e *env) {
	a, b, c := e.n("sink-a"), e.n("sink-b"), e.n("sink-c")
	e.ingestOne("a1", a, t0)
	e.ingestOne("a2", a, t0)
	e.ingestOne("b1", b, t0)
	e.ingestOne("c1", c, t0)
	e.wantIDs("claim", e.claimIDs(a, "w1", t0, time.Minute, 1), "a1")
	e.finish("a1", "w1", dead(t0))
	e.wantIDs("claim", e.claimIDs(b, "w1", t0, time.Minute, 1), "b1")
	e.finish("b1", "w1", dead(t0))
	e.wantIDs("claim", e.claimIDs(c, "w1", t0, time.Minute, 1), "c1")
	e.finish("c1", "w1", delivered(t0))

	got := e.pendingCounts(t0.Add(time.Minute))
	if st := got[a]; st.Pending != 1 || st.Dead != 1 || st.OldestDueAge != time.Minute {
		e.Errorf("sink a = %+v, want 1 pending due a minute ago, 1 dead", st)
	}
	if st, ok := got[b]; !ok || st.Pending != 0 || st.Dead != 1 || st.OldestDueAge != 0 {
		e.Errorf("sink b = %+v (present %v), want 1 dead, nothing pending", st, ok)
	}
	if st, ok := got[c]; ok && (st.Pending != 0 || st.Dead != 0) {
		e.Errorf("sink c = %+v, want nothing", st)
	}

	e.replay("b1", "alice", t0)
	got = e.pendingCounts(t0.Add(time.Minute))
	if st := got[b]; st.Pending != 1 || st.Dead != 0 || st.OldestDueAge != time.Minute {
		e.Errorf("sink b after a replay = %+v, want 1 pending due a minute ago, none dead", st)
	}
}

// testPrune works in 2011 (tp), where nothing of other subtests lies, so
// that it can count. Cut-off: tp.
func testPrune(e *env) {
	p := &pruneCase{
		env: e, src: e.n("src"), old: tp.Add(-time.Hour),
		done: e.n("sink-done"), wait: e.n("sink-wait"), busy: e.n("sink-busy"),
	}
	p.seed()
	p.prune()
	p.checkRows()
	p.checkKeys()
	p.checkReuse()
}

// pruneCase is testPrune's world: one source, and sinks whose deliveries
// end finished (done), wait for a retry (wait) or stay in flight (busy);
// old is an hour before the cut-off.
type pruneCase struct {
	*env
	src              string
	done, wait, busy string
	old              time.Time
}

// pruneLimit is the batch Prune is given: small, so that the rows go in
// several calls.
const pruneLimit = 5

// ev ingests an event with deliveries ds. Every event has a body hash,
// which must go with it.
func (p *pruneCase) ev(id string, at time.Time, ds ...router.NewDelivery) {
	p.Helper()
	rec := p.event(p.src, id, at)
	rec.BodyHash = hashOf(id)
	p.ingest(rec, ds...)
}

// seed writes what Prune must remove and what it must keep.
func (p *pruneCase) seed() {
	e, done, wait, busy, old := p.env, p.done, p.wait, p.busy, p.old
	// Pruned: finished before the cut-off, their events, an event that
	// never had a delivery, and a dedup key whose lock ran out.
	for i := range 5 {
		p.ev(fmt.Sprintf("ok%d", i), old, e.delivery(fmt.Sprintf("ok%d", i), done, old))
	}
	p.ev("dead0", old, e.delivery("dead0", done, old))
	p.ev("dead1", old, e.delivery("dead1", done, old))
	p.ev("none", old)
	// Kept: a pending delivery (and its event, whose other delivery goes),
	// one in flight, events and deliveries at or after the cut-off.
	p.ev("mixed", old, e.delivery("mixed-done", done, old), e.delivery("mixed-wait", wait, old))
	p.ev("stuck", old.Add(-time.Hour), e.delivery("stuck", wait, old))
	p.ev("flying", old, e.delivery("flying", busy, old))
	p.ev("edge", tp)
	p.ev("late", old, e.delivery("late", done, old))   // finished exactly at the cut-off
	p.ev("after", old, e.delivery("after", done, old)) // finished after it
	p.ev("recent", tp.Add(time.Minute), e.delivery("recent", done, tp.Add(time.Minute)))

	e.wantIDs("claim of the one in flight", e.claimIDs(busy, "w1", old, 24*time.Hour, 10), "flying")
	claimed := e.claimIDs(done, "w1", tp.Add(time.Minute), time.Hour, 100)
	if len(claimed) != 11 {
		e.Fatalf("claimed %q, want 11 deliveries", claimed)
	}
	finishedAt := old.Add(10 * time.Minute)
	for i := range 5 {
		e.finish(fmt.Sprintf("ok%d", i), "w1", delivered(finishedAt))
	}
	e.finish("dead0", "w1", dead(finishedAt))
	e.finish("dead1", "w1", dead(finishedAt))
	e.finish("mixed-done", "w1", delivered(finishedAt))
	lateAttempt := delivered(tp.Add(-time.Second))
	lateAttempt.Attempt.Duration = time.Second // ends, and so updates the delivery, at tp
	e.finish("late", "w1", lateAttempt)
	e.finish("after", "w1", delivered(tp))
	e.finish("recent", "w1", delivered(tp.Add(2*time.Minute)))

	for _, k := range []struct {
		key   string
		at    time.Time
		lease time.Duration
	}{
		{"k-old", old.Add(-time.Hour), time.Minute},     // pruned
		{"k-held", old.Add(-time.Hour), 48 * time.Hour}, // locked at the cut-off
		{"k-new", tp.Add(time.Minute), time.Minute},     // used after it
	} {
		if _, ok, err := e.s.AcquireKey(e.ctx, done, k.key, "w1", k.at, k.lease); err != nil || !ok {
			e.Fatalf("AcquireKey(%s) = %v, %v", k.key, ok, err)
		}
	}
}

// prune prunes in batches until a batch comes back short.
func (p *pruneCase) prune() {
	e := p.env
	// 8 deliveries, then 8 events, then 1 key: 17 rows in batches of 5.
	var counts []int
	for range 10 {
		n, err := e.s.Prune(e.ctx, tp, pruneLimit)
		if err != nil {
			e.Fatalf("Prune: %v", err)
		}
		counts = append(counts, n)
		if len(counts) == 1 {
			// Deliveries come first: the budget went on them.
			if _, err := e.s.GetEvent(e.ctx, p.src, "none"); err != nil {
				e.Errorf("after the first Prune: GetEvent(none) = %v, want it still there", err)
			}
		}
		if n < pruneLimit {
			break
		}
	}
	if !slices.Equal(counts, []int{5, 5, 5, 2}) {
		e.Errorf("Prune returned %v, want [5 5 5 2]", counts)
	}
	if n, err := e.s.Prune(e.ctx, tp, pruneLimit); err != nil || n != 0 {
		e.Errorf("Prune with nothing left = %d, %v; want 0", n, err)
	}
}

// checkRows checks which deliveries and events are gone and which are
// kept, with their status.
func (p *pruneCase) checkRows() {
	e := p.env
	gone := []string{"ok0", "ok1", "ok2", "ok3", "ok4", "dead0", "dead1", "mixed-done"}
	for _, id := range gone {
		if _, err := e.s.GetDelivery(e.ctx, e.n(id)); !errors.Is(err, router.ErrNotFound) {
			e.Errorf("GetDelivery(%s) after Prune: error = %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range []string{"ok0", "ok1", "ok2", "ok3", "ok4", "dead0", "dead1", "none"} {
		if _, err := e.s.GetEvent(e.ctx, p.src, id); !errors.Is(err, router.ErrNotFound) {
			e.Errorf("GetEvent(%s) after Prune: error = %v, want ErrNotFound", id, err)
		}
	}
	kept := map[string]string{ // delivery -> status
		"mixed-wait": router.StatusPending, "stuck": router.StatusPending, "flying": router.StatusPending,
		"late": router.StatusDelivered, "after": router.StatusDelivered, "recent": router.StatusDelivered,
	}
	for _, id := range slices.Sorted(maps.Keys(kept)) {
		d, err := e.s.GetDelivery(e.ctx, e.n(id))
		if err != nil {
			e.Errorf("GetDelivery(%s) after Prune: %v, want it kept", id, err)
			continue
		}
		if d.Status != kept[id] {
			e.Errorf("GetDelivery(%s) after Prune: status %s, want %s", id, d.Status, kept[id])
		}
	}
	if d := e.get("flying"); !d.Leased {
		e.Errorf("the delivery in flight lost its lease: %+v", d)
	}
	for _, id := range []string{"mixed", "stuck", "flying", "edge", "late", "after", "recent"} {
		if _, err := e.s.GetEvent(e.ctx, p.src, id); err != nil {
			e.Errorf("GetEvent(%s) after Prune: %v, want it kept", id, err)
		}
	}
}

// checkKeys: the dedup key pruned is free again at once; the others still
// hold their locks.
func (p *pruneCase) checkKeys() {
	e, done, old := p.env, p.done, p.old
	if _, ok, err := e.s.AcquireKey(e.ctx, done, "k-old", "w2", old.Add(-time.Hour+30*time.Second), time.Minute); err != nil || !ok {
		e.Errorf("AcquireKey(k-old) within its old lock = %v, %v; want it free (pruned)", ok, err)
	}
	if _, ok, err := e.s.AcquireKey(e.ctx, done, "k-held", "w2", tp, time.Minute); err != nil || ok {
		e.Errorf("AcquireKey(k-held) = %v, %v; want it still locked (kept)", ok, err)
	}
	if _, ok, err := e.s.AcquireKey(e.ctx, done, "k-new", "w2", tp.Add(time.Minute+30*time.Second), time.Minute); err != nil || ok {
		e.Errorf("AcquireKey(k-new) = %v, %v; want it still locked (kept)", ok, err)
	}
}

// checkReuse: what went with a pruned row does not haunt a new one.
func (p *pruneCase) checkReuse() {
	e := p.env
	// A pruned event's body hash went with it; a kept one's still holds.
	again := func(id string) *router.EventRecord {
		rec := e.event(p.src, id+"-again", tp)
		rec.BodyHash = hashOf(id)
		return rec
	}
	e.ingest(again("none"))
	e.ingestDup(again("edge"), "edge")

	// The attempts went with their deliveries: an id used again starts a
	// log of its own.
	p.ev("ok0-again", tp, e.delivery("ok0", p.done, tp))
	e.wantIDs("claim of a reused id", e.claimIDs(p.done, "w3", tp, time.Minute, 10), "ok0")
	e.finish("ok0", "w3", delivered(tp))
	if d := e.get("ok0"); len(d.AttemptLog) != 1 {
		e.Errorf("a reused id's log = %+v, want the one new attempt", d.AttemptLog)
	}
}

func testSinkState(e *env) {
	a, b := e.n("sink-a"), e.n("sink-b")
	states := func() map[string]router.SinkState {
		e.Helper()
		m, err := e.s.SinkStates(e.ctx)
		if err != nil {
			e.Fatalf("SinkStates: %v", err)
		}
		return m
	}
	set := func(sink string, paused bool, reason string, at time.Time) {
		e.Helper()
		if err := e.s.SetSinkPaused(e.ctx, sink, paused, reason, at); err != nil {
			e.Fatalf("SetSinkPaused(%s, %v): %v", sink, paused, err)
		}
	}
	want := func(what, sink string, st router.SinkState) {
		e.Helper()
		got, ok := states()[sink]
		if !ok || got.Paused != st.Paused || got.Reason != st.Reason || !got.Since.Equal(st.Since) {
			e.Errorf("%s: state = %+v (recorded %v), want %+v", what, got, ok, st)
		}
	}
	if _, ok := states()[a]; ok {
		e.Errorf("a sink never paused has a state")
	}
	set(a, true, "maintenance window", t0)
	set(b, false, "", t0.Add(time.Second))
	want("paused", a, router.SinkState{Paused: true, Reason: "maintenance window", Since: t0})
	want("resumed without a pause", b, router.SinkState{Since: t0.Add(time.Second)})
	set(a, true, "still down", t0.Add(time.Minute))
	want("paused again", a, router.SinkState{Paused: true, Reason: "still down", Since: t0})
	set(a, false, "fixed", t0.Add(2*time.Minute))
	want("resumed", a, router.SinkState{Reason: "fixed", Since: t0.Add(2 * time.Minute)})
	set(a, true, "", t0.Add(3*time.Minute))
	want("paused once more", a, router.SinkState{Paused: true, Since: t0.Add(3 * time.Minute)})
	if m := states(); len(m) < 2 {
		e.Errorf("SinkStates = %v, want every sink recorded", m)
	}
}

// testResumeMakesRetriesDue: resuming a paused sink (the breaker closing)
// makes its waiting retries due at once, or at their Retry-After floor if
// that is later; deliveries never attempted, those leased, other sinks'
// and a sink resumed without a pause keep their times.
func testResumeMakesRetriesDue(e *env) {
	sink, other, never := e.n("resumed"), e.n("other"), e.n("never-paused")
	later := t0.Add(time.Hour)
	// Each of these fails once at t0 and waits: "held" until t0+30m, the
	// others until later.
	for _, d := range []struct{ id, sink string }{{"r1", sink}, {"r2", sink}, {"held", sink}, {"o1", other}, {"n1", never}} {
		e.ingestOne(d.id, d.sink, t0)
		e.wantIDs("claim of "+d.id, e.claimIDs(d.sink, "w1", t0, time.Minute, 10), d.id)
		next := later
		if d.id == "held" {
			next = t0.Add(30 * time.Minute)
		}
		e.finish(d.id, "w1", retry(t0, next))
	}
	// Two that failed with a Retry-After: one whose floor is past at the
	// resume, one whose floor is not.
	resumed := t0.Add(31 * time.Minute)
	for id, floor := range map[string]time.Time{"floor-past": t0.Add(time.Minute), "floor-ahead": resumed.Add(10 * time.Minute)} {
		e.ingestOne(id, sink, t0)
		e.wantIDs("claim of "+id, e.claimIDs(sink, "w1", t0, time.Minute, 10), id)
		f := retry(t0, later)
		f.Attempt.StatusCode, f.NotBefore = 429, floor
		e.finish(id, "w1", f)
	}
	e.ingestOne("fresh", sink, later.Add(time.Hour)) // never attempted: a replay spread, say
	// "held" is in flight at the resume: its lease stands.
	e.wantIDs("claim of held", e.claimIDs(sink, "w2", t0.Add(30*time.Minute), 3*time.Hour, 10), "held")

	for _, s := range []string{sink, other} {
		if err := e.s.SetSinkPaused(e.ctx, s, true, "down", t0); err != nil {
			e.Fatalf("SetSinkPaused(%s, true): %v", s, err)
		}
	}
	for _, s := range []string{sink, never} {
		if err := e.s.SetSinkPaused(e.ctx, s, false, "up", resumed); err != nil {
			e.Fatalf("SetSinkPaused(%s, false): %v", s, err)
		}
	}
	// All due at the resume: the stores break the tie differently.
	e.wantIDs("claim at the resume", slices.Sorted(slices.Values(e.claimIDs(sink, "w3", resumed, time.Minute, 10))), "floor-past", "r1", "r2")
	for id, want := range map[string]time.Time{"fresh": later.Add(time.Hour), "o1": later, "n1": later, "floor-ahead": resumed.Add(10 * time.Minute)} {
		if d := e.get(id); !d.NextAttemptAt.Equal(want) {
			e.Errorf("%s: next attempt %v after the resume, want it kept at %v", id, d.NextAttemptAt, want)
		}
	}
	// Resuming again (not paused now) moves nothing.
	e.finish("r1", "w3", retry(resumed, later))
	if err := e.s.SetSinkPaused(e.ctx, sink, false, "up", resumed.Add(time.Minute)); err != nil {
		e.Fatalf("SetSinkPaused(%s, false) again: %v", sink, err)
	}
	if d := e.get("r1"); !d.NextAttemptAt.Equal(later) {
		e.Errorf("r1: next attempt %v after a resume without a pause, want %v", d.NextAttemptAt, later)
	}
}
