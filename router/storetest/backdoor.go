package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

// The checks below need a hand on the store's tables that the interface
// does not give (an old schema, an old timestamp): each store's own tests
// set that up and then call them, so the expectations are written once.

// UpgradedDeadDelivery checks delivery id, which an older schema stored as
// dead after three attempts to sink "k", as the current store reads it:
// no replays, not leased, and replayable into the pending count.
func UpgradedDeadDelivery(t *testing.T, s router.Store, id string) {
	t.Helper()
	ctx := context.Background()
	d, err := s.GetDelivery(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != router.StatusDead || d.Attempts != 3 || d.Replays != 0 || d.ReplayedBy != "" ||
		!d.ReplayedAt.IsZero() || d.Leased {
		t.Errorf("delivery after the upgrade = %+v", d)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Replay(ctx, id, "alice", at); err != nil {
		t.Fatal(err)
	}
	counts, err := s.PendingCounts(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if st := counts["k"]; st.Pending != 1 || st.Dead != 0 {
		t.Errorf("PendingCounts after the replay = %+v, want 1 pending", st)
	}
}

// PruneReleasedKey checks that a dedup key released (so unlocked) and
// unused since the cut-off is pruned, and a newer one kept. ReleaseKey
// stamps the store's own clock, so age sets the key's last use to at by
// hand.
func PruneReleasedKey(t *testing.T, s router.Store, age func(dedupKey string, at time.Time) error) {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, k := range []string{"old", "new"} {
		if _, ok, err := s.AcquireKey(ctx, "sink", k, "w", at, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireKey(%s) = %v, %v", k, ok, err)
		}
		if err := s.ReleaseKey(ctx, "sink", k, "w", router.RemoteObject{ID: "R-" + k}); err != nil {
			t.Fatal(err)
		}
	}
	if err := age("old", at); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx, at.Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want the old key", n, err)
	}
	for k, want := range map[string]string{"old": "", "new": "R-new"} {
		if remote, _, err := s.AcquireKey(ctx, "sink", k, "w2", at.Add(time.Hour), time.Minute); err != nil || remote.ID != want {
			t.Errorf("AcquireKey(%s) after Prune = %q, %v; want %q", k, remote.ID, err, want)
		}
	}
	if _, err := s.Prune(ctx, at, 0); err == nil {
		t.Error("Prune with limit 0 succeeded; a caller looping until n < limit would never stop")
	}
}
