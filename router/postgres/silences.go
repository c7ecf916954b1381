package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// CreateSilence records a silence; see router.Store.
func (s *Store) CreateSilence(ctx context.Context, sl *router.Silence) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO silences (id, matcher, comment, created_by, created_at, starts_at, ends_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, sl.ID, sl.Matcher, sl.Comment, sl.CreatedBy, sl.CreatedAt.UTC(), sl.StartsAt.UTC(), sl.EndsAt.UTC())
	if err != nil {
		return fmt.Errorf("postgres: create silence: %w", err)
	}
	return nil
}

// Silences lists every silence kept; see router.Store.
func (s *Store) Silences(ctx context.Context) ([]*router.Silence, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, matcher, comment, created_by, created_at, starts_at, ends_at
		FROM silences ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("postgres: silences: %w", err)
	}
	defer rows.Close()
	var out []*router.Silence
	for rows.Next() {
		var sl router.Silence
		if err := rows.Scan(&sl.ID, &sl.Matcher, &sl.Comment, &sl.CreatedBy, &sl.CreatedAt, &sl.StartsAt, &sl.EndsAt); err != nil {
			return nil, fmt.Errorf("postgres: silences: %w", err)
		}
		sl.CreatedAt, sl.StartsAt, sl.EndsAt = sl.CreatedAt.UTC(), sl.StartsAt.UTC(), sl.EndsAt.UTC()
		out = append(out, &sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: silences: %w", err)
	}
	return out, nil
}

// ExpireSilence ends a silence; see router.Store.
func (s *Store) ExpireSilence(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE silences SET ends_at = LEAST(ends_at, $1) WHERE id = $2`, at.UTC(), id)
	if err != nil {
		return fmt.Errorf("postgres: expire silence %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: expire silence %s: %w", id, router.ErrNotFound)
	}
	return nil
}
