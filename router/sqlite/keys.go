package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
	RETURNING remote_id, link`

// AcquireKey locks a dedup key; see router.Store.
func (s *Store) AcquireKey(ctx context.Context, sink, key, owner string, now time.Time, lease time.Duration) (router.RemoteObject, bool, error) {
	if owner == "" || lease <= 0 {
		return router.RemoteObject{}, false, errors.New("sqlite: acquire key: empty owner or lease")
	}
	var remote, link string
	err := s.w.QueryRowContext(ctx, sqlAcquireKey, sink, key, owner, unixNano(now.Add(lease)), unixNano(now)).Scan(&remote, &link)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return router.RemoteObject{}, false, nil
	case err != nil:
		return router.RemoteObject{}, false, fmt.Errorf("sqlite: acquire key: %w", err)
	}
	return router.RemoteObject{ID: remote, Link: router.ParseLink(link)}, true, nil
}

// sqlReleaseKey records the object and unlocks. ?5 is the link as stored,
// NULL to keep the recorded one unless the id changes.
const sqlReleaseKey = `UPDATE remote_objects
	SET link = CASE WHEN ?5 IS NOT NULL THEN ?5
			WHEN ?4 <> '' AND ?4 <> remote_id THEN '' ELSE link END,
		remote_id = CASE WHEN ?4 = '' THEN remote_id ELSE ?4 END,
		lock_owner = NULL, lock_until = NULL, updated_at = ?6
	WHERE sink = ?1 AND dedup_key = ?2 AND lock_owner = ?3`

// ReleaseKey records the remote object and unlocks; see router.Store.
func (s *Store) ReleaseKey(ctx context.Context, sink, key, owner string, obj router.RemoteObject) error {
	var link any
	if obj.Link != nil {
		link = obj.Link.Encode()
	}
	_, err := s.w.ExecContext(ctx, sqlReleaseKey, sink, key, owner, obj.ID, link, unixNano(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: release key: %w", err)
	}
	return nil
}

// Links returns every sink's object for a dedup key value; see
// router.Store.
func (s *Store) Links(ctx context.Context, key string) (map[string]router.Link, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT sink, remote_id, link FROM remote_objects
		WHERE dedup_key = ?1 AND remote_id <> ''`, key)
	if err != nil {
		return nil, fmt.Errorf("sqlite: links: %w", err)
	}
	defer rows.Close()
	out := map[string]router.Link{}
	for rows.Next() {
		var sink, id, link string
		if err := rows.Scan(&sink, &id, &link); err != nil {
			return nil, fmt.Errorf("sqlite: links: %w", err)
		}
		out[sink] = withID(router.ParseLink(link), id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: links: %w", err)
	}
	return out, nil
}

// withID returns l with its "id" entry set to id.
func withID(l router.Link, id string) router.Link {
	if l == nil {
		l = router.Link{}
	}
	l["id"] = id
	return l
}

// PendingFor reports the event's pending deliveries to sinks; see
// router.Store.
func (s *Store) PendingFor(ctx context.Context, source, eventID string, sinks []string) (time.Time, bool, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT sink, next_attempt_at FROM deliveries
		WHERE source = ?1 AND event_id = ?2 AND status = 'pending'`, source, eventID)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sqlite: pending for: %w", err)
	}
	defer rows.Close()
	var (
		due     time.Time
		pending bool
	)
	for rows.Next() {
		var (
			sink string
			at   int64
		)
		if err := rows.Scan(&sink, &at); err != nil {
			return time.Time{}, false, fmt.Errorf("sqlite: pending for: %w", err)
		}
		if !slices.Contains(sinks, sink) {
			continue
		}
		if t := fromNano(at); !pending || t.Before(due) {
			due = t
		}
		pending = true
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("sqlite: pending for: %w", err)
	}
	return due, pending, nil
}

// Postpone re-queues a claimed delivery without an attempt; see
// router.Store.
func (s *Store) Postpone(ctx context.Context, id, owner string, until time.Time, why string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE deliveries
		SET next_attempt_at = ?1, lease_owner = NULL, lease_until = NULL,
			last_error = CASE WHEN ?4 = '' THEN last_error ELSE ?4 END
		WHERE id = ?2 AND lease_owner = ?3 AND status = 'pending'`, unixNano(until), id, owner, why)
	if err != nil {
		return fmt.Errorf("sqlite: postpone %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return router.ErrLeaseLost
	}
	return nil
}
