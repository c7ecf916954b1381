package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookroute/hookroute/router"
)

// sqlClaim leases in one statement, and nothing of a sink held by
// HoldSink. FOR UPDATE SKIP LOCKED makes
// concurrent claimers (other workers, other replicas) pass over each
// other's candidate rows instead of queueing behind them, and a row is
// re-checked once locked, so two claimers never lease the same row. The
// subquery reads deliveries_due in order and stops at the LIMIT. The
// events come in the same statement, joined to the claimed rows.
//
// RETURNING gives no order, hence the final ORDER BY; ties in
// next_attempt_at go by id (SQLite's go by insertion order, which it gets
// for free from rowid).
const sqlClaim = `WITH claimed AS (
	UPDATE deliveries SET lease_owner = $1, lease_until = $2
	WHERE id IN (
		SELECT id FROM deliveries
		WHERE sink = $3 AND status = 'pending' AND next_attempt_at <= $4
			AND (lease_until IS NULL OR lease_until <= $4)
			AND NOT EXISTS (SELECT 1 FROM sink_state WHERE sink = $3 AND held_until > $4)
		ORDER BY next_attempt_at, id
		LIMIT $5
		FOR UPDATE SKIP LOCKED)
	RETURNING id, source, event_id, rule, route, sink, attempts, throttled, next_attempt_at
)
SELECT c.id, c.source, c.event_id, c.rule, c.route, c.sink, c.attempts, c.throttled, c.next_attempt_at,
	e.name, e.received_at, e.headers, e.body, e.quarantined, e.matched
FROM claimed c JOIN events e ON e.source = c.source AND e.id = c.event_id
ORDER BY c.next_attempt_at, c.id`

// sqlFinish moves a delivery on, only while owner still holds it, and logs
// the attempt, in one statement: the attempt is inserted only if the
// update matched, so a lost lease changes nothing. A retry keeps the remote
// id of an earlier attempt unless it brings its own. $13 is 1 for a
// backpressure answer, which counts as throttled, not as an attempt.
//
// Attempts are numbered from the log rather than from the attempts
// counter, so that a replay that resets the counter cannot collide with
// the attempts already logged. The update locks the delivery's row first,
// so two Finish calls cannot number the same attempt.
const sqlFinish = `WITH d AS (
	UPDATE deliveries
	SET status = $1, attempts = attempts + 1 - $13, throttled = throttled + $13,
		next_attempt_at = COALESCE($2::timestamptz, next_attempt_at),
		last_error = $3,
		remote_id = CASE WHEN $4 = '' THEN remote_id ELSE $4 END,
		lease_owner = NULL, lease_until = NULL, updated_at = $5, not_before = $12::timestamptz
	WHERE id = $6 AND lease_owner = $7 AND status = 'pending'
	RETURNING id
)
INSERT INTO attempts (delivery_id, n, at, duration_ns, outcome, status_code, error, remote_id)
SELECT d.id, (SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE delivery_id = d.id),
	$8, $9, $10, $11, $3, $4
FROM d`

// sqlRelaxCommit goes before a claim or an outcome in the same batch, one
// implicit transaction: its commit then returns without waiting for the
// WAL flush. Like the SQLite store's relaxed commits (see its
// committer.go), these are delivery bookkeeping: a database crash can undo
// the last moments of them (PostgreSQL's WAL writer flushes within three
// wal_writer_delay, 600 ms by default), which means a lease that never was
// or a delivery sent again with the same key, never a lost event. Ingests
// keep synchronous commits.
const sqlRelaxCommit = `SELECT set_config('synchronous_commit', 'off', true)`

// sqlNextDue: GREATEST ignores a NULL lease_until.
// A hold counts only while there is something pending (GREATEST of NULL
// and NULL is NULL).
const sqlNextDue = `SELECT GREATEST(MIN(GREATEST(next_attempt_at, lease_until)),
		CASE WHEN COUNT(*) > 0 THEN (SELECT held_until FROM sink_state WHERE sink = $1) END)
	FROM deliveries WHERE sink = $1 AND status = 'pending'`

// sqlPendingCounts counts each sink's pending deliveries from deliveries_due
// and its dead ones from deliveries_dead_sink, in one statement so in one
// snapshot; a sink may come in two rows.
const sqlPendingCounts = `SELECT sink, COUNT(*),
		MIN(next_attempt_at) FILTER (WHERE next_attempt_at <= $1), 0
	FROM deliveries WHERE status = 'pending' GROUP BY sink
	UNION ALL
	SELECT sink, 0, NULL, COUNT(*) FROM deliveries WHERE status = 'dead' GROUP BY sink`

// Claim leases up to max due deliveries of sink to owner until now+lease,
// oldest due first, with their events, in one statement.
func (s *Store) Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, max int) ([]*router.Claimed, error) {
	if max <= 0 {
		return nil, nil
	}
	if owner == "" {
		return nil, errors.New("postgres: claim: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("postgres: claim: lease %v is not positive", lease)
	}
	b := &pgx.Batch{}
	b.Queue(sqlRelaxCommit)
	b.Queue(sqlClaim, owner, now.Add(lease), sink, now, max)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("postgres: claim %s: %w", sink, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("postgres: claim %s: %w", sink, err)
	}
	defer rows.Close()

	// Deliveries of one event often travel together (one per rule); they
	// share one EventRecord, as they do from the SQLite store.
	type key struct{ source, id string }
	events := make(map[key]*router.EventRecord)
	var out []*router.Claimed
	for rows.Next() {
		var (
			c  router.Claimed
			ev router.EventRecord
		)
		if err := rows.Scan(&c.ID, &ev.Source, &ev.ID, &c.Rule, &c.Route, &c.Sink, &c.Attempts, &c.Throttled, &c.Due,
			&ev.Name, &ev.ReceivedAt, &ev.Headers, &ev.Body, &ev.Quarantined, &ev.Matched); err != nil {
			return nil, fmt.Errorf("postgres: claim %s: %w", sink, err)
		}
		k := key{ev.Source, ev.ID}
		if seen, ok := events[k]; ok {
			c.Event = seen
		} else {
			c.Event = &ev
			events[k] = &ev
		}
		out = append(out, &c)
	}
	// The server commits the statement whether or not its rows arrive:
	// deliveries leased but lost here stay leased until the lease runs
	// out, as after a crash.
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: claim %s: %w", sink, err)
	}
	// The batch's implicit transaction commits after its last statement:
	// only a committed lease may be acted on.
	rows.Close()
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("postgres: claim %s: %w", sink, err)
	}
	return out, nil
}

// Finish records the attempt and the delivery's new state in one
// statement. UpdatedAt becomes the end of the attempt; a pending delivery
// with a zero NextAttemptAt is due again from then. A retry sends no
// NOTIFY: the local worker's timer covers it, and NextDue tells any other
// replica's worker when to look.
func (s *Store) Finish(ctx context.Context, id, owner string, f router.Finish) error {
	switch f.Status {
	case router.StatusPending, router.StatusDelivered, router.StatusDead:
	default:
		return fmt.Errorf("postgres: finish %s: unknown status %q", id, f.Status)
	}
	switch f.Attempt.Outcome {
	case router.OutcomeDelivered, router.OutcomeRetry, router.OutcomeDead:
	default:
		return fmt.Errorf("postgres: finish %s: unknown outcome %q", id, f.Attempt.Outcome)
	}
	a := f.Attempt
	updated := a.At.Add(a.Duration)
	if a.At.IsZero() {
		updated = time.Now()
	}
	var next, notBefore *time.Time // nil keeps next_attempt_at; nil: no floor
	if f.Status == router.StatusPending {
		next = &updated // no time given: due again at once
		if !f.NextAttemptAt.IsZero() {
			next = &f.NextAttemptAt
		}
		if !f.NotBefore.IsZero() {
			notBefore = &f.NotBefore
		}
	}
	throttled := 0
	if f.Backpressure {
		throttled = 1
	}
	b := &pgx.Batch{}
	b.Queue(sqlRelaxCommit)
	b.Queue(sqlFinish, f.Status, next, a.Error, a.RemoteID, updated, id, owner,
		a.At, int64(a.Duration), a.Outcome, a.StatusCode, notBefore, throttled)
	br := s.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: finish %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: finish %s: %w", id, router.ErrLeaseLost)
	}
	return nil
}

// Release drops the leases of owner, or every lease when owner is "".
// Only pending deliveries hold leases (Finish drops them), and saying so
// lets the planner find them through deliveries_due instead of scanning
// the whole log.
//
// On a shared database Release("") takes the leases of every replica: call
// it only when no other replica is running.
func (s *Store) Release(ctx context.Context, owner string) error {
	var err error
	if owner == "" {
		_, err = s.pool.Exec(ctx, `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
			WHERE status = 'pending' AND lease_owner IS NOT NULL`)
	} else {
		_, err = s.pool.Exec(ctx, `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
			WHERE status = 'pending' AND lease_owner = $1`, owner)
	}
	if err != nil {
		return fmt.Errorf("postgres: release %q: %w", owner, err)
	}
	return nil
}

// NextDue returns the earliest time one of sink's pending deliveries can be
// claimed: its next_attempt_at, or its lease's end if that is later.
func (s *Store) NextDue(ctx context.Context, sink string) (time.Time, bool, error) {
	var next *time.Time
	if err := s.pool.QueryRow(ctx, sqlNextDue, sink).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next due %s: %w", sink, err)
	}
	if next == nil {
		return time.Time{}, false, nil
	}
	return *next, true, nil
}

// PendingCounts counts pending and dead deliveries per sink; sinks with
// neither are absent. OldestDueAge is 0 for a sink with nothing due at now.
func (s *Store) PendingCounts(ctx context.Context, now time.Time) (map[string]router.PendingStat, error) {
	rows, err := s.pool.Query(ctx, sqlPendingCounts, now)
	if err != nil {
		return nil, fmt.Errorf("postgres: pending counts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]router.PendingStat)
	for rows.Next() {
		var (
			sink          string
			pending, dead int
			oldest        *time.Time
		)
		if err := rows.Scan(&sink, &pending, &oldest, &dead); err != nil {
			return nil, fmt.Errorf("postgres: pending counts: %w", err)
		}
		st := out[sink]
		st.Pending += pending
		st.Dead += dead
		if oldest != nil {
			st.OldestDueAge = now.Sub(*oldest)
		}
		out[sink] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: pending counts: %w", err)
	}
	return out, nil
}
