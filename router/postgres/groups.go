package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/router"
)

// JoinGroup puts a delivery into its group's open batch, or opens one;
// see router.Store. The group's row is locked for the transaction, so a
// join and a flush of one group, on any replicas, take turns.
func (s *Store) JoinGroup(ctx context.Context, m router.GroupMember, now time.Time, wait, interval time.Duration) (string, time.Time, error) {
	var batch string
	var flushAt time.Time
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO groups (scope, key) VALUES ($1, $2) ON CONFLICT DO NOTHING`, m.Scope, m.Key); err != nil {
			return err
		}
		var (
			open        *string
			flush, last *time.Time
		)
		if err := tx.QueryRow(ctx, `SELECT open_batch, flush_at, last_flush_at FROM groups WHERE scope = $1 AND key = $2 FOR UPDATE`,
			m.Scope, m.Key).Scan(&open, &flush, &last); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT batch FROM group_members WHERE delivery = $1`, m.Delivery).Scan(&batch)
		switch {
		case err == nil:
			if open != nil && *open == batch && flush != nil {
				flushAt = *flush
			}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if open != nil {
			batch = *open
			if flush != nil {
				flushAt = *flush
			}
		} else {
			batch, flushAt = m.Delivery, now.Add(wait)
			if last != nil && last.Add(interval).After(flushAt) {
				flushAt = last.Add(interval)
			}
			if _, err := tx.Exec(ctx, `UPDATE groups SET open_batch = $3, flush_at = $4 WHERE scope = $1 AND key = $2`,
				m.Scope, m.Key, batch, flushAt.UTC()); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO group_members (batch, delivery, source, event_id, received_at, scope, key)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, batch, m.Delivery, m.Source, m.EventID, m.ReceivedAt.UTC(), m.Scope, m.Key)
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("postgres: join group: %w", err)
	}
	if !flushAt.IsZero() {
		flushAt = flushAt.UTC()
	}
	return batch, flushAt, nil
}

// FlushGroup closes a batch and returns its members; see router.Store.
func (s *Store) FlushGroup(ctx context.Context, batch string, now time.Time) ([]router.GroupMember, error) {
	var out []router.GroupMember
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE groups g SET open_batch = NULL, last_flush_at = $1
			FROM group_members m WHERE m.delivery = $2 AND g.scope = m.scope AND g.key = m.key AND g.open_batch = $2`, now.UTC(), batch); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT scope, key, delivery, source, event_id, received_at FROM group_members
			WHERE batch = $1 ORDER BY received_at, delivery`, batch)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (router.GroupMember, error) {
			var m router.GroupMember
			err := r.Scan(&m.Scope, &m.Key, &m.Delivery, &m.Source, &m.EventID, &m.ReceivedAt)
			m.ReceivedAt = m.ReceivedAt.UTC()
			return m, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: flush group: %w", err)
	}
	return out, nil
}

// OpenGroups counts groups waiting to flush; see router.Store.
func (s *Store) OpenGroups(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM groups WHERE open_batch IS NOT NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: open groups: %w", err)
	}
	return n, nil
}

// GroupOf returns the batch a delivery joined; see router.Store.
func (s *Store) GroupOf(ctx context.Context, delivery string) (string, error) {
	var batch string
	err := s.pool.QueryRow(ctx, `SELECT batch FROM group_members WHERE delivery = $1`, delivery).Scan(&batch)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres: group of %s: %w", delivery, err)
	}
	return batch, nil
}
