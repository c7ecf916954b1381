package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// sqlTimers reads the waiting deliveries with their event's name from the
// partial index deliveries_waiting (only waiting rows are in it), so
// that the delivery log is never read: the status is a literal, which
// the index's condition must see, and INDEXED BY holds the planner to it
// (as in read.go). Its order, due then id, is the order Timers gives.
// The join is by the events' primary key. A delivery goes with its event
// (the foreign key cascades), so the event is there; LEFT all the same,
// so that a listing never drops a waiting delivery silently.
const sqlTimers = `SELECT coalesce(d.timer_key, ''), d.source, d.event_id, d.rule, d.id, d.sink, d.next_attempt_at, d.created_at,
		coalesce(e.name, '')
	FROM deliveries d INDEXED BY deliveries_waiting
	LEFT JOIN events e ON e.source = d.source AND e.id = d.event_id
	WHERE d.status = 'waiting'
	ORDER BY d.next_attempt_at, d.id`

// Timers lists the waiting timers; see router.Store.
func (s *Store) Timers(ctx context.Context) ([]router.Timer, error) {
	rows, err := s.r.QueryContext(ctx, sqlTimers)
	if err != nil {
		return nil, fmt.Errorf("sqlite: timers: %w", err)
	}
	defer rows.Close()
	var out []router.Timer
	at := map[[3]string]int{} // key, source, event id → index in out
	for rows.Next() {
		var t router.Timer
		var d router.TimerDelivery
		var due, created int64
		if err := rows.Scan(&t.Key, &t.Source, &t.EventID, &t.Rule, &d.ID, &d.Sink, &due, &created, &t.EventName); err != nil {
			return nil, fmt.Errorf("sqlite: timers: %w", err)
		}
		d.Due = fromNano(due)
		// Rows come earliest due first, so a timer's first row is its
		// earliest: the timers come out in the order of their Due too.
		k := [3]string{t.Key, t.Source, t.EventID}
		i, seen := at[k]
		if !seen {
			t.ID = router.TimerID(t.Key, t.Source, t.EventID)
			t.StartedAt, t.Due = fromNano(created), d.Due
			i, at[k] = len(out), len(out)
			out = append(out, t)
		}
		out[i].Deliveries = append(out[i].Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: timers: %w", err)
	}
	return out, nil
}

// CancelTimer cancels one timer's waiting deliveries; see router.Store.
// Either the partial index deliveries_timer (the key's rows) or
// deliveries_event (the event's) narrows it to a few rows; the rest of
// the condition picks the timer's among them, and the status condition
// keeps it exclusive with FireTimers, as CancelTimers.
func (s *Store) CancelTimer(ctx context.Context, timerKey, source, eventID, by string, at time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE deliveries SET status = 'cancelled', last_error = ?4, updated_at = ?5
		WHERE timer_key = ?1 AND source = ?2 AND event_id = ?3 AND status = 'waiting'`,
		timerKey, source, eventID, "cancelled by "+by, unixNano(at))
	if err != nil {
		return 0, fmt.Errorf("sqlite: cancel timer: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: cancel timer: %w", err)
	}
	return int(n), nil
}

// WaitingTimers counts the waiting deliveries; see router.Store.
func (s *Store) WaitingTimers(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE status = 'waiting'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: waiting timers: %w", err)
	}
	return n, nil
}
