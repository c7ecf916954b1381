package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// Operator writes. They are rare, so they go to the writer connection
// directly, like the dedup-key writes, instead of through the committer.

// sqlReplay resets a delivery that is not in flight. The attempt log stays:
// Finish numbers attempts from it, so the next attempt follows the last
// one logged. last_error stays too, as the reason the delivery was
// replayed.
const sqlReplay = `UPDATE deliveries
	SET status = 'pending', attempts = 0, throttled = 0, next_attempt_at = ?1, not_before = NULL,
		lease_owner = NULL, lease_until = NULL,
		replays = replays + 1, replayed_by = ?2, replayed_at = ?1, updated_at = ?1
	WHERE id = ?3 AND NOT (status = 'pending' AND lease_owner IS NOT NULL)`

// Replay puts a delivery back to pending, due at at (now if at is zero);
// see router.Store. A pending delivery with a lease owner is in flight,
// even if its lease has run out: its worker may still finish it.
func (s *Store) Replay(ctx context.Context, id, by string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	res, err := s.w.ExecContext(ctx, sqlReplay, unixNano(at), by, id)
	if err != nil {
		return fmt.Errorf("sqlite: replay %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: replay %s: %w", id, err)
	} else if n == 1 {
		return nil
	}
	// Nothing changed: unknown, or in flight. The answer is as of this
	// read, which is all a caller could act on anyway.
	var one int
	err = s.w.QueryRowContext(ctx, `SELECT 1 FROM deliveries WHERE id = ?`, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: replay %s: %w", id, router.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: replay %s: %w", id, err)
	}
	return fmt.Errorf("sqlite: replay %s: %w", id, router.ErrBusy)
}

// The retention steps. Each deletes up to ?2 rows chosen by a subquery
// (SQLite's DELETE has no LIMIT of its own), oldest first, so that the
// subquery reads an index in order and stops at the LIMIT: nothing is
// loaded into memory, whatever the backlog.
const (
	// sqlPruneDeliveries reads deliveries_created: a delivery is updated
	// after it was created, so created_at < ?1 only narrows the scan to
	// the index range that can match. The attempts go by ON DELETE
	// CASCADE.
	sqlPruneDeliveries = `DELETE FROM deliveries WHERE rowid IN (
		SELECT rowid FROM deliveries
		WHERE created_at < ?1 AND updated_at < ?1 AND status IN ('delivered', 'dead', 'suppressed', 'silenced', 'grouped', 'cancelled')
		ORDER BY created_at
		LIMIT ?2)`
	// sqlPruneEvents reads events_received_at, and deliveries_event for
	// each candidate.
	sqlPruneEvents = `DELETE FROM events WHERE rowid IN (
		SELECT e.rowid FROM events e
		WHERE e.received_at < ?1
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.source = e.source AND d.event_id = e.id)
		ORDER BY e.received_at
		LIMIT ?2)`
	// sqlPruneKeys: a lock that ran out before the cut-off is no lock
	// (AcquireKey would take it). The table has a row per dedup key, far
	// fewer than events, and no index on updated_at, which every
	// AcquireKey and ReleaseKey would have to update.
	sqlPruneKeys = `DELETE FROM remote_objects WHERE rowid IN (
		SELECT rowid FROM remote_objects
		WHERE updated_at < ?1 AND (lock_owner IS NULL OR lock_until < ?1)
		LIMIT ?2)`
	// sqlPruneCooldowns: a cooldown that ended before the cut-off
	// suppresses nothing more; what it suppressed, the next delivery has
	// long reported.
	sqlPruneCooldowns = `DELETE FROM cooldowns WHERE (scope, key) IN (
		SELECT scope, key FROM cooldowns WHERE until < ?1 ORDER BY until LIMIT ?2)`
	// sqlPruneSilences: a silence that ended before the cut-off mutes
	// nothing; the deliveries it silenced keep its id.
	sqlPruneSilences = `DELETE FROM silences WHERE id IN (
		SELECT id FROM silences WHERE ends_at < ?1 ORDER BY ends_at LIMIT ?2)`
	// sqlPruneGroupMembers: members of flushed batches older than the
	// cut-off (their deliveries are gone or going), and sqlPruneGroups:
	// groups with no open batch that last flushed before it.
	sqlPruneGroupMembers = `DELETE FROM group_members WHERE (batch, delivery) IN (
		SELECT batch, delivery FROM group_members
		WHERE received_at < ?1 AND batch NOT IN (SELECT open_batch FROM groups WHERE open_batch IS NOT NULL)
		LIMIT ?2)`
	sqlPruneGroups = `DELETE FROM groups WHERE (scope, key) IN (
		SELECT scope, key FROM groups WHERE open_batch IS NULL AND last_flush_at < ?1 LIMIT ?2)`
)

// Prune deletes up to limit rows of history older than before: finished
// deliveries, then events left without deliveries, then unused dedup keys
// and ended cooldowns, silences and flushed groups;
// see router.Store. It runs in one transaction, so one fsync, and holds
// the writer for as long as limit rows take to delete.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("sqlite: prune: limit %d is not positive", limit)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	defer tx.Rollback()
	cut := unixNano(before)
	total := 0
	for _, step := range []struct{ what, sql string }{
		{"deliveries", sqlPruneDeliveries},
		{"events", sqlPruneEvents},
		{"dedup keys", sqlPruneKeys},
		{"cooldowns", sqlPruneCooldowns},
		{"silences", sqlPruneSilences},
		{"group members", sqlPruneGroupMembers},
		{"groups", sqlPruneGroups},
	} {
		if total >= limit {
			break
		}
		res, err := tx.ExecContext(ctx, step.sql, cut, limit-total)
		if err != nil {
			return 0, fmt.Errorf("sqlite: prune %s: %w", step.what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("sqlite: prune %s: %w", step.what, err)
		}
		total += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: prune: commit: %w", err)
	}
	return total, nil
}

// sqlSetSinkPaused keeps since while the state stays the same: pausing a
// paused sink again (with a new reason, say) does not restart the clock.
const sqlSetSinkPaused = `INSERT INTO sink_state (sink, paused, reason, since)
	VALUES (?1, ?2, ?3, ?4)
	ON CONFLICT (sink) DO UPDATE
		SET reason = excluded.reason,
			since = CASE WHEN sink_state.paused = excluded.paused THEN sink_state.since ELSE excluded.since END,
			paused = excluded.paused`

// sqlResumeDue makes a resumed sink's waiting retries due at once, or at
// their Retry-After floor; see router.Store.SetSinkPaused.
const sqlResumeDue = `UPDATE deliveries SET next_attempt_at = MAX(?2, COALESCE(not_before, 0))
	WHERE sink = ?1 AND status = 'pending' AND (attempts > 0 OR throttled > 0) AND next_attempt_at > MAX(?2, COALESCE(not_before, 0))
		AND (lease_until IS NULL OR lease_until <= ?2)`

// SetSinkPaused records a sink's paused state; see router.Store. Since
// changes only when the state does; a resume of a paused sink makes its
// waiting retries due at once, in the same transaction.
func (s *Store) SetSinkPaused(ctx context.Context, sink string, paused bool, reason string, at time.Time) error {
	if sink == "" {
		return errors.New("sqlite: set sink paused: empty sink")
	}
	if at.IsZero() {
		at = time.Now()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: set sink %s paused: %w", sink, err)
	}
	defer tx.Rollback()
	var was bool
	if err := tx.QueryRowContext(ctx, `SELECT paused FROM sink_state WHERE sink = ?`, sink).Scan(&was); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: set sink %s paused: %w", sink, err)
	}
	if _, err := tx.ExecContext(ctx, sqlSetSinkPaused, sink, paused, reason, unixNano(at)); err != nil {
		return fmt.Errorf("sqlite: set sink %s paused: %w", sink, err)
	}
	if was && !paused {
		if _, err := tx.ExecContext(ctx, sqlResumeDue, sink, unixNano(at)); err != nil {
			return fmt.Errorf("sqlite: resume sink %s: %w", sink, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set sink %s paused: %w", sink, err)
	}
	return nil
}

// sqlHoldSink keeps the later hold. A sink held but never paused gets a
// row that says not paused, since the zero time.
const sqlHoldSink = `INSERT INTO sink_state (sink, paused, reason, since, held_until)
	VALUES (?1, 0, '', 0, ?2)
	ON CONFLICT (sink) DO UPDATE
		SET held_until = MAX(COALESCE(sink_state.held_until, 0), excluded.held_until)`

// HoldSink records that no request may go to sink before until; see
// router.Store.
func (s *Store) HoldSink(ctx context.Context, sink string, until time.Time) error {
	if sink == "" {
		return errors.New("sqlite: hold sink: empty sink")
	}
	if _, err := s.w.ExecContext(ctx, sqlHoldSink, sink, unixNano(until)); err != nil {
		return fmt.Errorf("sqlite: hold sink %s: %w", sink, err)
	}
	return nil
}

// SinkStates returns the state of every sink ever paused, resumed or held.
func (s *Store) SinkStates(ctx context.Context) (map[string]router.SinkState, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT sink, paused, reason, since, held_until FROM sink_state`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: sink states: %w", err)
	}
	defer rows.Close()
	out := make(map[string]router.SinkState)
	for rows.Next() {
		var (
			sink          string
			paused, since int64
			held          sql.NullInt64
			st            router.SinkState
		)
		if err := rows.Scan(&sink, &paused, &st.Reason, &since, &held); err != nil {
			return nil, fmt.Errorf("sqlite: sink states: %w", err)
		}
		st.Paused = paused != 0
		st.Since = fromNano(since)
		if held.Valid {
			st.HeldUntil = fromNano(held.Int64)
		}
		out[sink] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: sink states: %w", err)
	}
	return out, nil
}
