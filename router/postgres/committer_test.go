package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

// TestIngestsAreGroupCommitted: ingests that arrive together commit in
// shared batches, and one whose statement fails in its batch fails alone:
// the batch is rolled back and its ingests run again one by one.
func TestIngestsAreGroupCommitted(t *testing.T) {
	url, admin := freshSchema(t)
	s := openStore(t, url, Options{})
	var mu sync.Mutex
	var sizes []int
	failed := 0
	s.onBatch = func(n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, n)
		if err != nil {
			failed++
		}
	}
	ctx := context.Background()
	ev := func(id string) *router.EventRecord {
		return &router.EventRecord{Source: "s", ID: id, Name: "x", ReceivedAt: time.Now(), Body: []byte("{}")}
	}
	// A delivery id taken already: an ingest that reuses it fails.
	if _, err := s.Ingest(ctx, ev("first"), []router.NewDelivery{{ID: "d-taken", Rule: "r", Sink: "k"}}); err != nil {
		t.Fatal(err)
	}
	const n, bad = 200, 100
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("d", i)
			if i == bad {
				id = "d-taken"
			}
			_, errs[i] = s.Ingest(ctx, ev(fmt.Sprint("e", i)), []router.NewDelivery{{ID: id, Rule: "r", Sink: "k"}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i == bad) != (err != nil) {
			t.Errorf("ingest %d: error %v", i, err)
		}
	}
	var events, deliveries int
	if err := admin.QueryRow(ctx, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)").Scan(&events, &deliveries); err != nil {
		t.Fatal(err)
	}
	if events != n || deliveries != n {
		t.Errorf("%d events and %d deliveries stored, want %d of each (the first, and all but the failed one)", events, deliveries, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) == 0 {
		t.Fatalf("no batch held more than one of %d concurrent ingests", n)
	}
	if failed == 0 {
		t.Errorf("no batch failed, yet one ingest did: batches %v", sizes)
	}
	t.Logf("batches of more than one: %v", sizes)
}
