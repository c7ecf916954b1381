package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/router"
)

// sqlReplay resets a delivery that is not in flight, and wakes the sink's
// workers on every replica, as Ingest does, in one statement. The attempt
// log stays: Finish numbers attempts from it, so the next attempt follows
// the last one logged. last_error stays too, as the reason the delivery
// was replayed.
//
// The UPDATE waits for a Finish or Claim holding the row and re-checks
// the row as they left it. When it matched nothing, the second EXISTS, read
// from the statement's snapshot, tells an unknown id from a delivery in
// flight. The final count only makes the notification run (see sqlIngest).
const sqlReplay = `WITH r AS (
	UPDATE deliveries
	SET status = 'pending', attempts = 0, throttled = 0, next_attempt_at = $1, not_before = NULL,
		lease_owner = NULL, lease_until = NULL,
		replays = replays + 1, replayed_by = $2, replayed_at = $1, updated_at = $1
	WHERE id = $3 AND NOT (status = 'pending' AND lease_owner IS NOT NULL)
	RETURNING sink
), woken AS (
	SELECT pg_notify($4, sink) FROM r
)
SELECT EXISTS (SELECT FROM r), EXISTS (SELECT FROM deliveries WHERE id = $3), (SELECT count(*) FROM woken)`

// Replay puts a delivery back to pending, due at at (now if at is zero);
// see router.Store. A pending delivery with a lease owner is in flight,
// even if its lease has run out: its worker may still finish it.
func (s *Store) Replay(ctx context.Context, id, by string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	var (
		replayed, exists bool
		woken            int64
	)
	if err := s.pool.QueryRow(ctx, sqlReplay, at, by, id, s.channel).Scan(&replayed, &exists, &woken); err != nil {
		return fmt.Errorf("postgres: replay %s: %w", id, err)
	}
	switch {
	case replayed:
		return nil
	case !exists:
		return fmt.Errorf("postgres: replay %s: %w", id, router.ErrNotFound)
	}
	return fmt.Errorf("postgres: replay %s: %w", id, router.ErrBusy)
}

// The retention steps. Each deletes up to $2 rows whose ctids an InitPlan
// collects (PostgreSQL's DELETE has no LIMIT): the DELETE fetches just
// those tuples (a TID scan), where an IN (subquery) join would take a
// shape that depends on the planner's guess at the subquery's size, up to
// a scan of the whole table. Only the ctids of one batch are held. The subquery reads an index in order where
// one gives it, oldest first, and stops at the LIMIT: a backlog of any size
// costs a batch its own rows.
//
// The picked rows are locked FOR UPDATE SKIP LOCKED: a row that a worker,
// a replay or another replica's prune holds is left for the next call, and
// a picked row cannot change before it is deleted. A row changed after the
// statement's snapshot was taken (a Finish, an AcquireKey) is locked in its
// new version, if that still qualifies, which the DELETE does not see: it
// is left for the next call too.
const (
	// sqlPruneDeliveries reads deliveries_created: a delivery is updated
	// after it was created, so created_at < $1 only narrows the scan to
	// the index range that can match. The attempts go by ON DELETE
	// CASCADE.
	sqlPruneDeliveries = `DELETE FROM deliveries WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM deliveries
		WHERE created_at < $1 AND updated_at < $1 AND status IN ('delivered', 'dead', 'suppressed', 'silenced', 'grouped', 'cancelled')
		ORDER BY created_at
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	// sqlPruneEvents reads events_received_at, and deliveries_event for
	// each candidate. OFFSET 0 keeps NOT EXISTS a probe per candidate:
	// turned into an anti-join, it may hash the whole deliveries table
	// for each batch. No delivery can appear for an event already stored:
	// Ingest inserts deliveries only with a new event.
	sqlPruneEvents = `DELETE FROM events WHERE ctid = ANY (ARRAY(
		SELECT e.ctid FROM events e
		WHERE e.received_at < $1
			AND NOT EXISTS (SELECT FROM deliveries d
				WHERE d.source = e.source AND d.event_id = e.id OFFSET 0)
		ORDER BY e.received_at
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	// sqlPruneKeys: a lock that ran out before the cut-off is no lock
	// (AcquireKey would take it). The table has a row per dedup key, far
	// fewer than events, and no index on updated_at, which would make
	// every AcquireKey and ReleaseKey update an index: the subquery scans
	// it until it has a batch.
	sqlPruneKeys = `DELETE FROM remote_objects WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM remote_objects
		WHERE updated_at < $1 AND (lock_owner IS NULL OR lock_until < $1)
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	// sqlPruneCooldowns: a cooldown that ended before the cut-off
	// suppresses nothing more; what it suppressed, the next delivery has
	// long reported.
	sqlPruneCooldowns = `DELETE FROM cooldowns WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM cooldowns WHERE until < $1 ORDER BY until
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	// sqlPruneSilences: a silence that ended before the cut-off mutes
	// nothing; the deliveries it silenced keep its id.
	sqlPruneSilences = `DELETE FROM silences WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM silences WHERE ends_at < $1 ORDER BY ends_at
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	// sqlPruneGroupMembers: members of flushed batches older than the
	// cut-off (their deliveries are gone or going), and sqlPruneGroups:
	// groups with no open batch that last flushed before it.
	sqlPruneGroupMembers = `DELETE FROM group_members WHERE ctid = ANY (ARRAY(
		SELECT m.ctid FROM group_members m
		WHERE m.received_at < $1 AND NOT EXISTS (SELECT FROM groups g WHERE g.open_batch = m.batch)
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
	sqlPruneGroups = `DELETE FROM groups WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM groups WHERE open_batch IS NULL AND last_flush_at < $1
		LIMIT $2
		FOR UPDATE SKIP LOCKED))`
)

// Prune deletes up to limit rows of history older than before: finished
// deliveries, then events left without deliveries, then unused dedup keys
// and ended cooldowns, silences and flushed groups;
// see router.Store. Each step is a statement of its own, committed on its
// own, so that no lock is held longer than one step.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("postgres: prune: limit %d is not positive", limit)
	}
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
		tag, err := s.pool.Exec(ctx, step.sql, before, limit-total)
		if err != nil {
			return total, fmt.Errorf("postgres: prune %s: %w", step.what, err)
		}
		total += int(tag.RowsAffected())
	}
	return total, nil
}

// sqlSetSinkPaused keeps since while the state stays the same: pausing a
// paused sink again (with a new reason, say) does not restart the clock.
const sqlSetSinkPaused = `INSERT INTO sink_state (sink, paused, reason, since)
	VALUES ($1, $2, $3, $4)
	ON CONFLICT (sink) DO UPDATE
		SET reason = excluded.reason,
			since = CASE WHEN sink_state.paused = excluded.paused THEN sink_state.since ELSE excluded.since END,
			paused = excluded.paused`

// sqlResumeDue makes a resumed sink's waiting retries due at once, or at
// their Retry-After floor; see router.Store.SetSinkPaused.
const sqlResumeDue = `UPDATE deliveries SET next_attempt_at = GREATEST($2::timestamptz, COALESCE(not_before, $2::timestamptz))
	WHERE sink = $1 AND status = 'pending' AND (attempts > 0 OR throttled > 0)
		AND next_attempt_at > GREATEST($2::timestamptz, COALESCE(not_before, $2::timestamptz))
		AND (lease_until IS NULL OR lease_until <= $2)`

// SetSinkPaused records a sink's paused state; see router.Store. Since
// changes only when the state does; a resume of a paused sink makes its
// waiting retries due at once, in the same transaction. The state row is
// locked first, so that of two replicas resuming a sink at once only one
// sees it paused.
func (s *Store) SetSinkPaused(ctx context.Context, sink string, paused bool, reason string, at time.Time) error {
	if sink == "" {
		return errors.New("postgres: set sink paused: empty sink")
	}
	if at.IsZero() {
		at = time.Now()
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: set sink %s paused: %w", sink, err)
	}
	defer tx.Rollback(ctx)
	var was bool
	if err := tx.QueryRow(ctx, `SELECT paused FROM sink_state WHERE sink = $1 FOR UPDATE`, sink).Scan(&was); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: set sink %s paused: %w", sink, err)
	}
	if _, err := tx.Exec(ctx, sqlSetSinkPaused, sink, paused, reason, at); err != nil {
		return fmt.Errorf("postgres: set sink %s paused: %w", sink, err)
	}
	if was && !paused {
		if _, err := tx.Exec(ctx, sqlResumeDue, sink, at); err != nil {
			return fmt.Errorf("postgres: resume sink %s: %w", sink, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: set sink %s paused: %w", sink, err)
	}
	return nil
}

// sqlHoldSink keeps the later hold (GREATEST ignores a NULL). A sink held
// but never paused gets a row that says not paused, since the zero time.
const sqlHoldSink = `INSERT INTO sink_state (sink, paused, reason, since, held_until)
	VALUES ($1, false, '', '0001-01-01 00:00:00+00', $2)
	ON CONFLICT (sink) DO UPDATE
		SET held_until = GREATEST(sink_state.held_until, excluded.held_until)`

// HoldSink records that no request may go to sink before until; see
// router.Store.
func (s *Store) HoldSink(ctx context.Context, sink string, until time.Time) error {
	if sink == "" {
		return errors.New("postgres: hold sink: empty sink")
	}
	if _, err := s.pool.Exec(ctx, sqlHoldSink, sink, until); err != nil {
		return fmt.Errorf("postgres: hold sink %s: %w", sink, err)
	}
	return nil
}

// SinkStates returns the state of every sink ever paused, resumed or held.
func (s *Store) SinkStates(ctx context.Context) (map[string]router.SinkState, error) {
	rows, err := s.pool.Query(ctx, `SELECT sink, paused, reason, since, held_until FROM sink_state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: sink states: %w", err)
	}
	defer rows.Close()
	out := make(map[string]router.SinkState)
	for rows.Next() {
		var (
			sink string
			held *time.Time
			st   router.SinkState
		)
		if err := rows.Scan(&sink, &st.Paused, &st.Reason, &st.Since, &held); err != nil {
			return nil, fmt.Errorf("postgres: sink states: %w", err)
		}
		if held != nil {
			st.HeldUntil = held.UTC()
		}
		out[sink] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: sink states: %w", err)
	}
	return out, nil
}
