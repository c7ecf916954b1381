package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// CreateSilence records a silence; see router.Store.
func (s *Store) CreateSilence(ctx context.Context, sl *router.Silence) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO silences (id, matcher, comment, created_by, created_at, starts_at, ends_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, sl.ID, sl.Matcher, sl.Comment, sl.CreatedBy, unixNano(sl.CreatedAt), unixNano(sl.StartsAt), unixNano(sl.EndsAt))
	if err != nil {
		return fmt.Errorf("sqlite: create silence: %w", err)
	}
	return nil
}

// Silences lists every silence kept; see router.Store.
func (s *Store) Silences(ctx context.Context) ([]*router.Silence, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, matcher, comment, created_by, created_at, starts_at, ends_at
		FROM silences ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: silences: %w", err)
	}
	defer rows.Close()
	var out []*router.Silence
	for rows.Next() {
		var sl router.Silence
		var created, starts, ends int64
		if err := rows.Scan(&sl.ID, &sl.Matcher, &sl.Comment, &sl.CreatedBy, &created, &starts, &ends); err != nil {
			return nil, fmt.Errorf("sqlite: silences: %w", err)
		}
		sl.CreatedAt, sl.StartsAt, sl.EndsAt = fromNano(created), fromNano(starts), fromNano(ends)
		out = append(out, &sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: silences: %w", err)
	}
	return out, nil
}

// ExpireSilence ends a silence; see router.Store.
func (s *Store) ExpireSilence(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE silences SET ends_at = MIN(ends_at, ?1) WHERE id = ?2`, unixNano(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: expire silence %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: expire silence %s: %w", id, router.ErrNotFound)
	}
	return nil
}
