package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// sqlAcquireKey inserts the key locked, or takes the lock if it is free,
// expired or already ours; RETURNING yields no row when the update's WHERE
// refused, which is how a held lock shows.
const sqlAcquireKey = `INSERT INTO remote_objects
	(sink, dedup_key, remote_id, lock_owner, lock_until, created_at, updated_at)
	VALUES (?1, ?2, '', ?3, ?4, ?5, ?5)
	ON CONFLICT (sink, dedup_key) DO UPDATE
		SET lock_owner = excluded.lock_owner, lock_until = excluded.lock_until, updated_at = excluded.updated_at
		WHERE remote_objects.lock_owner IS NULL OR remote_objects.lock_owner = excluded.lock_owner
			OR remote_objects.lock_until <= ?5
	RETURNING remote_id`

// AcquireKey locks a dedup key; see router.Store.
func (s *Store) AcquireKey(ctx context.Context, sink, key, owner string, now time.Time, lease time.Duration) (string, bool, error) {
	if owner == "" || lease <= 0 {
		return "", false, errors.New("sqlite: acquire key: empty owner or lease")
	}
	var remote string
	err := s.w.QueryRowContext(ctx, sqlAcquireKey, sink, key, owner, unixNano(now.Add(lease)), unixNano(now)).Scan(&remote)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("sqlite: acquire key: %w", err)
	}
	return remote, true, nil
}

// ReleaseKey records the remote id and unlocks; see router.Store.
func (s *Store) ReleaseKey(ctx context.Context, sink, key, owner, remoteID string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE remote_objects
		SET remote_id = CASE WHEN ?4 = '' THEN remote_id ELSE ?4 END,
			lock_owner = NULL, lock_until = NULL, updated_at = ?5
		WHERE sink = ?1 AND dedup_key = ?2 AND lock_owner = ?3`,
		sink, key, owner, remoteID, unixNano(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: release key: %w", err)
	}
	return nil
}

// Postpone re-queues a claimed delivery without an attempt; see
// router.Store.
func (s *Store) Postpone(ctx context.Context, id, owner string, until time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE deliveries
		SET next_attempt_at = ?1, lease_owner = NULL, lease_until = NULL
		WHERE id = ?2 AND lease_owner = ?3 AND status = 'pending'`, unixNano(until), id, owner)
	if err != nil {
		return fmt.Errorf("sqlite: postpone %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return router.ErrLeaseLost
	}
	return nil
}
