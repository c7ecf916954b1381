package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// sqlTimers reads the waiting deliveries with their event's name. The
// status is a literal, not a parameter, so that the planner can use the
// partial index deliveries_waiting (only waiting rows are in it) and
// never reads the delivery log; its order, due then id, is the order
// Timers gives. The join is by the events' primary key. A delivery goes with its event
// (the foreign key cascades), so the event is there; LEFT all the same,
// so that a listing never drops a waiting delivery silently.
const sqlTimers = `SELECT coalesce(d.timer_key, ''), d.source, d.event_id, d.rule, d.id, d.sink, d.next_attempt_at, d.created_at,
		coalesce(e.name, '')
	FROM deliveries d
	LEFT JOIN events e ON e.source = d.source AND e.id = d.event_id
	WHERE d.status = 'waiting'
	ORDER BY d.next_attempt_at, d.id`

// Timers lists the waiting timers; see router.Store.
func (s *Store) Timers(ctx context.Context) ([]router.Timer, error) {
	rows, err := s.pool.Query(ctx, sqlTimers)
	if err != nil {
		return nil, fmt.Errorf("postgres: timers: %w", err)
	}
	defer rows.Close()
	var out []router.Timer
	at := map[[3]string]int{} // key, source, event id → index in out
	for rows.Next() {
		var t router.Timer
		var d router.TimerDelivery
		if err := rows.Scan(&t.Key, &t.Source, &t.EventID, &t.Rule, &d.ID, &d.Sink, &d.Due, &t.StartedAt, &t.EventName); err != nil {
			return nil, fmt.Errorf("postgres: timers: %w", err)
		}
		d.Due, t.StartedAt = d.Due.UTC(), t.StartedAt.UTC()
		// Rows come earliest due first, so a timer's first row is its
		// earliest: the timers come out in the order of their Due too.
		k := [3]string{t.Key, t.Source, t.EventID}
		i, seen := at[k]
		if !seen {
			t.ID = router.TimerID(t.Key, t.Source, t.EventID)
			t.Due = d.Due
			i, at[k] = len(out), len(out)
			out = append(out, t)
		}
		out[i].Deliveries = append(out[i].Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: timers: %w", err)
	}
	return out, nil
}

// CancelTimer cancels one timer's waiting deliveries; see router.Store.
// The partial index deliveries_timer finds the key's few rows; source and
// event id pick the timer's among them. A row FireTimers is firing is
// waited for, and the status, checked again on the locked row, keeps the
// two exclusive.
func (s *Store) CancelTimer(ctx context.Context, timerKey, source, eventID, by string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = 'cancelled', last_error = $4, updated_at = $5
		WHERE timer_key = $1 AND source = $2 AND event_id = $3 AND status = 'waiting'`,
		timerKey, source, eventID, "cancelled by "+by, at.UTC())
	if err != nil {
		return 0, fmt.Errorf("postgres: cancel timer: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// WaitingTimers counts the waiting deliveries; see router.Store.
func (s *Store) WaitingTimers(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE status = 'waiting'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: waiting timers: %w", err)
	}
	return n, nil
}
