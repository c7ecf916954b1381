package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/router"
)

// sqlAcquireKey inserts the key locked, or takes the lock if it is free,
// expired or already ours; RETURNING yields no row when the update's WHERE
// refused, which is how a held lock shows. The row lock taken by ON
// CONFLICT makes two replicas racing for one key take turns.
const sqlAcquireKey = `INSERT INTO remote_objects
	(sink, dedup_key, remote_id, lock_owner, lock_until, created_at, updated_at)
	VALUES ($1, $2, '', $3, $4, $5, $5)
	ON CONFLICT (sink, dedup_key) DO UPDATE
		SET lock_owner = excluded.lock_owner, lock_until = excluded.lock_until, updated_at = excluded.updated_at
		WHERE remote_objects.lock_owner IS NULL OR remote_objects.lock_owner = excluded.lock_owner
			OR remote_objects.lock_until <= $5
	RETURNING remote_id`

// AcquireKey locks a dedup key; see router.Store.
func (s *Store) AcquireKey(ctx context.Context, sink, key, owner string, now time.Time, lease time.Duration) (string, bool, error) {
	if owner == "" || lease <= 0 {
		return "", false, errors.New("postgres: acquire key: empty owner or lease")
	}
	var remote string
	err := s.pool.QueryRow(ctx, sqlAcquireKey, sink, key, owner, now.Add(lease).UTC(), now.UTC()).Scan(&remote)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("postgres: acquire key: %w", err)
	}
	return remote, true, nil
}

// ReleaseKey records the remote id and unlocks; see router.Store.
func (s *Store) ReleaseKey(ctx context.Context, sink, key, owner, remoteID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE remote_objects
		SET remote_id = CASE WHEN $4 = '' THEN remote_id ELSE $4 END,
			lock_owner = NULL, lock_until = NULL, updated_at = now()
		WHERE sink = $1 AND dedup_key = $2 AND lock_owner = $3`,
		sink, key, owner, remoteID)
	if err != nil {
		return fmt.Errorf("postgres: release key: %w", err)
	}
	return nil
}

// Postpone re-queues a claimed delivery without an attempt; see
// router.Store.
func (s *Store) Postpone(ctx context.Context, id, owner string, until time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries
		SET next_attempt_at = $1, lease_owner = NULL, lease_until = NULL
		WHERE id = $2 AND lease_owner = $3 AND status = 'pending'`, until.UTC(), id, owner)
	if err != nil {
		return fmt.Errorf("postgres: postpone %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return router.ErrLeaseLost
	}
	return nil
}
