package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// FireTimers makes waiting deliveries due by now pending; see
// router.Store. The status condition is what makes a fire and a cancel of
// one delivery exclusive: whichever update runs first changes it, and the
// other finds nothing waiting.
func (s *Store) FireTimers(ctx context.Context, now time.Time, max int) ([]router.FiredTimer, error) {
	// Looked at on the read pool first: the router asks five times a
	// second, and an UPDATE that finds nothing still takes the single
	// writer from the group committer.
	var due int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM deliveries
		WHERE status = 'waiting' AND next_attempt_at <= ?1 LIMIT 1)`, unixNano(now)).Scan(&due)
	if err != nil {
		return nil, fmt.Errorf("sqlite: fire timers: %w", err)
	}
	if due == 0 {
		return nil, nil
	}
	rows, err := s.w.QueryContext(ctx, `UPDATE deliveries SET status = 'pending', updated_at = ?1
		WHERE rowid IN (SELECT rowid FROM deliveries WHERE status = 'waiting' AND next_attempt_at <= ?1
			ORDER BY next_attempt_at LIMIT ?2)
		RETURNING id, sink`, unixNano(now), max)
	if err != nil {
		return nil, fmt.Errorf("sqlite: fire timers: %w", err)
	}
	defer rows.Close()
	var out []router.FiredTimer
	for rows.Next() {
		var f router.FiredTimer
		if err := rows.Scan(&f.ID, &f.Sink); err != nil {
			return nil, fmt.Errorf("sqlite: fire timers: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: fire timers: %w", err)
	}
	return out, nil
}

// CancelTimers cancels the waiting deliveries of a timer; see
// router.Store.
func (s *Store) CancelTimers(ctx context.Context, timerKey, by string, at time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE deliveries SET status = 'cancelled', last_error = ?2, updated_at = ?3
		WHERE timer_key = ?1 AND status = 'waiting'`, timerKey, "cancelled by event "+by, unixNano(at))
	if err != nil {
		return 0, fmt.Errorf("sqlite: cancel timers: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: cancel timers: %w", err)
	}
	return int(n), nil
}
