package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/hookroute/hookroute/router"
)

// The body hash: a second dedup key per source, for bodies whose
// signature covers no id (EventRecord.BodyHash).

// hashOf returns a body hash as the router makes one.
func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// ingestDup ingests ev, which must be a duplicate of the stored event
// wantID, and checks that Ingest set ev.ID to it.
func (e *env) ingestDup(ev *router.EventRecord, wantID string, ds ...router.NewDelivery) {
	e.Helper()
	given := ev.ID
	dup, err := e.s.Ingest(e.ctx, ev, ds)
	if err != nil {
		e.Fatalf("Ingest(%s/%s): %v", ev.Source, given, err)
	}
	if !dup {
		e.Fatalf("Ingest(%s/%s): new, want a duplicate of %s", ev.Source, given, wantID)
	}
	if ev.ID != wantID {
		e.Errorf("Ingest(%s/%s): duplicate of %q, want %q", ev.Source, given, ev.ID, wantID)
	}
}

func testDuplicateBodyHash(e *env) {
	src, sink := e.n("src"), e.n("sink")
	withHash := func(id string, hash []byte) *router.EventRecord {
		ev := e.event(src, id, t0)
		ev.BodyHash = hash
		return ev
	}
	h1, h2 := hashOf("body-1"), hashOf("body-2")
	first := withHash("delivery-1", h1)
	e.ingest(first, e.delivery("d1", sink, t0))

	// The same body under a new id: nothing stored, the stored id given.
	replay := withHash("delivery-2", h1)
	replay.Headers = map[string]string{"x-github-delivery": "delivery-2"}
	e.ingestDup(replay, "delivery-1", e.delivery("d2", sink, t0))
	if _, err := e.s.GetEvent(e.ctx, src, "delivery-2"); !errors.Is(err, router.ErrNotFound) {
		e.Errorf("GetEvent(delivery-2) = %v, want ErrNotFound: the replay stored nothing", err)
	}
	got, err := e.s.GetEvent(e.ctx, src, "delivery-1")
	if err != nil {
		e.Fatalf("GetEvent(delivery-1): %v", err)
	}
	checkEvent(e.T, got, first)
	e.wantIDs("deliveries", e.list(router.DeliveryFilter{Source: src}), "d1")

	// The same id with another body is a duplicate by id, as ever, and
	// its hash is not recorded: that body is new under a new id.
	e.ingestDup(withHash("delivery-1", h2), "delivery-1")
	e.ingestDup(withHash("delivery-1", nil), "delivery-1")
	e.ingest(withHash("delivery-3", h2), e.delivery("d3", sink, t0))
	// A clash on both keys, with different events: the id's event is the
	// one given back.
	e.ingestDup(withHash("delivery-3", h1), "delivery-3")

	// The hash is unique per source; events without one never clash by
	// body.
	other := e.event(e.n("src2"), "delivery-9", t0)
	other.BodyHash = h1
	e.ingest(other)
	e.ingest(withHash("plain-1", nil))
	e.ingest(withHash("plain-2", nil))
	e.wantIDs("deliveries at the end", e.list(router.DeliveryFilter{Source: src}), "d3", "d1")
}

// testDuplicateBodyHashRace: one body posted at once under many ids, as
// replicas (or one group commit) see a replayed request, is stored once.
func testDuplicateBodyHashRace(e *env) {
	const n = 50
	src, hash := e.n("src"), hashOf("raced body")
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		dups  = make([]bool, n)
		errs  = make([]error, n)
		evs   = make([]*router.EventRecord, n)
	)
	for g := range n {
		evs[g] = e.event(src, fmt.Sprintf("id-%02d", g), t0)
		evs[g].BodyHash = hash
		wg.Go(func() {
			ds := []router.NewDelivery{
				e.delivery(fmt.Sprintf("g%d-a", g), e.n("sink"), t0),
				e.delivery(fmt.Sprintf("g%d-b", g), e.n("sink"), t0),
			}
			<-start
			dups[g], errs[g] = e.s.Ingest(e.ctx, evs[g], ds)
		})
	}
	close(start)
	wg.Wait()

	winner := e.soleWinner(dups, errs)
	want := fmt.Sprintf("id-%02d", winner)
	for g := range n {
		if evs[g].ID != want {
			e.Errorf("Ingest %d: duplicate of %q, want the stored %q", g, evs[g].ID, want)
		}
	}
	got := e.list(router.DeliveryFilter{Source: src})
	slices.Sort(got)
	e.wantIDs("deliveries", got, fmt.Sprintf("g%d-a", winner), fmt.Sprintf("g%d-b", winner))
}
