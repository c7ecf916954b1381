package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/router"
)

// FireTimers makes waiting deliveries due by now pending; see
// router.Store. Rows another replica is firing or cancelling are skipped
// (SKIP LOCKED), and the status condition, checked again on the locked
// row, keeps a fire and a cancel of one delivery exclusive.
func (s *Store) FireTimers(ctx context.Context, now time.Time, max int) ([]router.FiredTimer, error) {
	rows, err := s.pool.Query(ctx, `UPDATE deliveries SET status = 'pending', updated_at = $1
		WHERE id IN (SELECT id FROM deliveries WHERE status = 'waiting' AND next_attempt_at <= $1
			ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			AND status = 'waiting'
		RETURNING id, sink`, now.UTC(), max)
	if err != nil {
		return nil, fmt.Errorf("postgres: fire timers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (router.FiredTimer, error) {
		var f router.FiredTimer
		err := r.Scan(&f.ID, &f.Sink)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: fire timers: %w", err)
	}
	return out, nil
}

// CancelTimers cancels the waiting deliveries of a timer; see
// router.Store.
func (s *Store) CancelTimers(ctx context.Context, timerKey, by string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = 'cancelled', last_error = $2, updated_at = $3
		WHERE timer_key = $1 AND status = 'waiting'`, timerKey, "cancelled by event "+by, at.UTC())
	if err != nil {
		return 0, fmt.Errorf("postgres: cancel timers: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
