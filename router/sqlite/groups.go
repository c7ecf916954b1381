package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// JoinGroup puts a delivery into its group's open batch, or opens one;
// see router.Store. One transaction on the single writer, so a join and a
// flush of the same group never interleave.
func (s *Store) JoinGroup(ctx context.Context, m router.GroupMember, now time.Time, wait, interval time.Duration) (string, time.Time, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sqlite: join group: %w", err)
	}
	defer tx.Rollback()
	batch, flushAt, err := joinGroup(ctx, tx, m, now, wait, interval)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sqlite: join group: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", time.Time{}, fmt.Errorf("sqlite: join group: %w", err)
	}
	return batch, flushAt, nil
}

func joinGroup(ctx context.Context, tx *sql.Tx, m router.GroupMember, now time.Time, wait, interval time.Duration) (string, time.Time, error) {
	var batch string
	err := tx.QueryRowContext(ctx, `SELECT batch FROM group_members WHERE delivery = ?`, m.Delivery).Scan(&batch)
	switch {
	case err == nil:
		// Joined before: the batch flushes when its group says, or is
		// flushed (zero: now).
		var flush int64
		err := tx.QueryRowContext(ctx, `SELECT flush_at FROM groups WHERE scope = ? AND key = ? AND open_batch = ?`, m.Scope, m.Key, batch).Scan(&flush)
		if errors.Is(err, sql.ErrNoRows) {
			return batch, time.Time{}, nil
		}
		return batch, fromNano(flush), err
	case !errors.Is(err, sql.ErrNoRows):
		return "", time.Time{}, err
	}
	var (
		open        sql.NullString
		flush, last int64
	)
	err = tx.QueryRowContext(ctx, `SELECT open_batch, flush_at, last_flush_at FROM groups WHERE scope = ? AND key = ?`, m.Scope, m.Key).Scan(&open, &flush, &last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, err
	}
	if open.Valid {
		batch = open.String
	} else {
		batch, flush = m.Delivery, unixNano(now.Add(wait))
		if last != 0 {
			flush = max(flush, unixNano(fromNano(last).Add(interval)))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO groups (scope, key, open_batch, flush_at) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (scope, key) DO UPDATE SET open_batch = ?3, flush_at = ?4`, m.Scope, m.Key, batch, flush); err != nil {
			return "", time.Time{}, err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (batch, delivery, source, event_id, received_at, scope, key)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, batch, m.Delivery, m.Source, m.EventID, unixNano(m.ReceivedAt), m.Scope, m.Key); err != nil {
		return "", time.Time{}, err
	}
	return batch, fromNano(flush), nil
}

// FlushGroup closes a batch and returns its members; see router.Store.
func (s *Store) FlushGroup(ctx context.Context, batch string, now time.Time) ([]router.GroupMember, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: flush group: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE groups SET open_batch = NULL, last_flush_at = ?1
		WHERE open_batch = ?2 AND (scope, key) IN (SELECT scope, key FROM group_members WHERE delivery = ?2)`, unixNano(now), batch); err != nil {
		return nil, fmt.Errorf("sqlite: flush group: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT scope, key, delivery, source, event_id, received_at FROM group_members
		WHERE batch = ? ORDER BY received_at, delivery`, batch)
	if err != nil {
		return nil, fmt.Errorf("sqlite: flush group: %w", err)
	}
	defer rows.Close()
	var out []router.GroupMember
	for rows.Next() {
		var m router.GroupMember
		var at int64
		if err := rows.Scan(&m.Scope, &m.Key, &m.Delivery, &m.Source, &m.EventID, &at); err != nil {
			return nil, fmt.Errorf("sqlite: flush group: %w", err)
		}
		m.ReceivedAt = fromNano(at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: flush group: %w", err)
	}
	rows.Close()
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: flush group: %w", err)
	}
	return out, nil
}

// OpenGroups counts groups waiting to flush; see router.Store.
func (s *Store) OpenGroups(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM groups WHERE open_batch IS NOT NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: open groups: %w", err)
	}
	return n, nil
}

// GroupOf returns the batch a delivery joined; see router.Store.
func (s *Store) GroupOf(ctx context.Context, delivery string) (string, error) {
	var batch string
	err := s.r.QueryRowContext(ctx, `SELECT batch FROM group_members WHERE delivery = ?`, delivery).Scan(&batch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: group of %s: %w", delivery, err)
	}
	return batch, nil
}
