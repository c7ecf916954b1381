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
	RETURNING remote_id, link`

// AcquireKey locks a dedup key; see router.Store.
func (s *Store) AcquireKey(ctx context.Context, sink, key, owner string, now time.Time, lease time.Duration) (router.RemoteObject, bool, error) {
	if owner == "" || lease <= 0 {
		return router.RemoteObject{}, false, errors.New("postgres: acquire key: empty owner or lease")
	}
	var remote, link string
	err := s.pool.QueryRow(ctx, sqlAcquireKey, sink, key, owner, now.Add(lease).UTC(), now.UTC()).Scan(&remote, &link)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return router.RemoteObject{}, false, nil
	case err != nil:
		return router.RemoteObject{}, false, fmt.Errorf("postgres: acquire key: %w", err)
	}
	return router.RemoteObject{ID: remote, Link: router.ParseLink(link)}, true, nil
}

// sqlReleaseKey records the object and unlocks. $5 is the link as stored,
// NULL to keep the recorded one unless the id changes.
const sqlReleaseKey = `UPDATE remote_objects
	SET link = CASE WHEN $5::text IS NOT NULL THEN $5::text
			WHEN $4 <> '' AND $4 <> remote_id THEN '' ELSE link END,
		remote_id = CASE WHEN $4 = '' THEN remote_id ELSE $4 END,
		lock_owner = NULL, lock_until = NULL, updated_at = now()
	WHERE sink = $1 AND dedup_key = $2 AND lock_owner = $3`

// ReleaseKey records the remote object and unlocks; see router.Store.
func (s *Store) ReleaseKey(ctx context.Context, sink, key, owner string, obj router.RemoteObject) error {
	var link *string
	if obj.Link != nil {
		enc := obj.Link.Encode()
		link = &enc
	}
	if _, err := s.pool.Exec(ctx, sqlReleaseKey, sink, key, owner, obj.ID, link); err != nil {
		return fmt.Errorf("postgres: release key: %w", err)
	}
	return nil
}

// Links returns every sink's object for a dedup key value; see
// router.Store.
func (s *Store) Links(ctx context.Context, key string) (map[string]router.Link, error) {
	rows, err := s.pool.Query(ctx, `SELECT sink, remote_id, link FROM remote_objects
		WHERE dedup_key = $1 AND remote_id <> ''`, key)
	if err != nil {
		return nil, fmt.Errorf("postgres: links: %w", err)
	}
	defer rows.Close()
	out := map[string]router.Link{}
	for rows.Next() {
		var sink, id, link string
		if err := rows.Scan(&sink, &id, &link); err != nil {
			return nil, fmt.Errorf("postgres: links: %w", err)
		}
		l := router.ParseLink(link)
		if l == nil {
			l = router.Link{}
		}
		l["id"] = id
		out[sink] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: links: %w", err)
	}
	return out, nil
}

// PendingFor reports the event's pending deliveries to sinks; see
// router.Store.
func (s *Store) PendingFor(ctx context.Context, source, eventID string, sinks []string) (time.Time, bool, error) {
	var due *time.Time
	err := s.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM deliveries
		WHERE source = $1 AND event_id = $2 AND status = 'pending' AND sink = ANY($3)`,
		source, eventID, sinks).Scan(&due)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: pending for: %w", err)
	}
	if due == nil {
		return time.Time{}, false, nil
	}
	return due.UTC(), true, nil
}

// Postpone re-queues a claimed delivery without an attempt; see
// router.Store.
func (s *Store) Postpone(ctx context.Context, id, owner string, until time.Time, why string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries
		SET next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
			last_error = CASE WHEN $4 = '' THEN last_error ELSE $4 END
		WHERE id = $2 AND lease_owner = $3 AND status = 'pending'`, until.UTC(), id, owner, why)
	if err != nil {
		return fmt.Errorf("postgres: postpone %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return router.ErrLeaseLost
	}
	return nil
}
