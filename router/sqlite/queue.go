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

// sqlClaim leases in one statement, so two claimers can never pick the same
// row, and nothing of a sink held by HoldSink (a lookup by primary key in
// a table of one row per sink). It selects by rowid because the due index stores rowids: the subquery
// reads only the index, and rowid also breaks next_attempt_at ties in
// insertion order.
//
// The limit is "?5 + 0", not "?5": SQLite plans with the value of a bound
// LIMIT, so every new binding of a bare ?5 expired the prepared statement,
// and each claim was parsed and planned again (a tenth of the claim's CPU
// in profiles of the benchmark). The index gives the order, so the plan
// needs no limit to stop early.
const sqlClaim = `UPDATE deliveries
	SET lease_owner = ?1, lease_until = ?2
	WHERE rowid IN (
		SELECT rowid FROM deliveries
		WHERE sink = ?3 AND status = 'pending' AND next_attempt_at <= ?4
			AND (lease_until IS NULL OR lease_until <= ?4)
			AND NOT EXISTS (SELECT 1 FROM sink_state WHERE sink = ?3 AND held_until > ?4)
		ORDER BY next_attempt_at, rowid
		LIMIT ?5 + 0)
	RETURNING rowid, id, source, event_id, rule, route, sink, attempts, throttled, next_attempt_at`

const sqlClaimEvent = `SELECT name, received_at, headers, body, quarantined, matched, body_codec
	FROM events WHERE source = ? AND id = ?`

// sqlFinish moves a delivery on, only while owner still holds it. A retry
// keeps the remote id of an earlier attempt unless it brings its own. ?9 is
// 1 for a backpressure answer, which counts as throttled, not as an
// attempt.
const sqlFinish = `UPDATE deliveries
	SET status = ?1, attempts = attempts + 1 - ?9, throttled = throttled + ?9,
		next_attempt_at = COALESCE(?2, next_attempt_at),
		last_error = ?3,
		remote_id = CASE WHEN ?4 = '' THEN remote_id ELSE ?4 END,
		lease_owner = NULL, lease_until = NULL, updated_at = ?5, not_before = ?8
	WHERE id = ?6 AND lease_owner = ?7 AND status = 'pending'`

// sqlInsertAttempt numbers attempts from the log rather than from the
// attempts counter, so a replay that resets the counter cannot collide
// with the attempts already logged.
const sqlInsertAttempt = `INSERT INTO attempts
	(delivery_id, n, at, duration_ns, outcome, status_code, error, remote_id)
	VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE delivery_id = ?1),
		?2, ?3, ?4, ?5, ?6, ?7)`

const sqlNextDue = `SELECT MAX(MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))),
		COALESCE((SELECT held_until FROM sink_state WHERE sink = ?1), 0))
	FROM deliveries WHERE sink = ?1 AND status = 'pending'`

// sqlPendingCounts counts each sink's pending deliveries from deliveries_due
// and its dead ones from deliveries_dead_sink, in one statement so in one
// snapshot; a sink may come in two rows.
const sqlPendingCounts = `SELECT sink, COUNT(*),
		MIN(CASE WHEN next_attempt_at <= ?1 THEN next_attempt_at END), 0
	FROM deliveries WHERE status = 'pending' GROUP BY sink
	UNION ALL
	SELECT sink, 0, NULL, COUNT(*) FROM deliveries WHERE status = 'dead' GROUP BY sink`

// claimOp is a Claim call. It goes through the committer like ingests and
// finishes: a claim writes leases, and sharing the batch's commit (one
// fsync) with them is what keeps delivery throughput up.
type claimOp struct {
	sink, owner string
	until, now  int64
	max         int
	out         []*router.Claimed
}

// Claim leases up to max due deliveries of sink to owner until now+lease,
// oldest due first. The lease and the events are read in one transaction,
// so a failed Claim leaves nothing leased.
func (s *Store) Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, max int) ([]*router.Claimed, error) {
	if max <= 0 {
		return nil, nil
	}
	if owner == "" {
		return nil, errors.New("sqlite: claim: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("sqlite: claim: lease %v is not positive", lease)
	}
	op := &claimOp{sink: sink, owner: owner, until: unixNano(now.Add(lease)), now: unixNano(now), max: max}
	if err := s.submit(ctx, &writeReq{ctx: ctx, claim: op}); err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	return op.out, nil
}

// claim runs a claimOp inside the batch transaction.
func (b *batch) claim(op *claimOp) error {
	op.out = nil // a batch that is run again claims again
	type row struct {
		c       *router.Claimed
		rowid   int64
		due     int64
		source  string
		eventID string
	}
	rows, err := b.stmt(&b.claimStmt, b.s.stmtClaim).Query(op.owner, op.until, op.sink, op.now, op.max)
	if err != nil {
		return err
	}
	var claimed []row
	for rows.Next() {
		r := row{c: &router.Claimed{}}
		if err := rows.Scan(&r.rowid, &r.c.ID, &r.source, &r.eventID, &r.c.Rule, &r.c.Route,
			&r.c.Sink, &r.c.Attempts, &r.c.Throttled, &r.due); err != nil {
			rows.Close()
			return err
		}
		claimed = append(claimed, r)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// RETURNING gives no order.
	slices.SortFunc(claimed, func(a, b row) int {
		if a.due != b.due {
			return cmpInt64(a.due, b.due)
		}
		return cmpInt64(a.rowid, b.rowid)
	})
	// Deliveries of one event often travel together (one per rule).
	type key struct{ source, id string }
	events := make(map[key]*router.EventRecord)
	get := b.stmt(&b.claimEventStmt, b.s.stmtClaimEvent)
	out := make([]*router.Claimed, 0, len(claimed))
	for _, r := range claimed {
		k := key{r.source, r.eventID}
		ev, ok := events[k]
		if !ok {
			ev, err = scanEvent(get.QueryRow(r.source, r.eventID), r.source, r.eventID)
			if err != nil {
				return fmt.Errorf("event %s/%s: %w", r.source, r.eventID, err)
			}
			events[k] = ev
		}
		r.c.Event = ev
		r.c.Due = fromNano(r.due)
		out = append(out, r.c)
	}
	op.out = out
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// finishOp is a Finish call, queued to the committer like an ingest, so
// that the status writes of many workers share one fsync too.
type finishOp struct {
	id, owner string
	f         router.Finish
	throttled int // 1 for a backpressure answer
	next      any // int64, or nil to keep next_attempt_at
	notBefore any // int64, or nil: no floor
	updatedAt int64
}

// Finish records the attempt and the delivery's new state in one
// transaction (shared with other writes by group commit, but atomic on its
// own). UpdatedAt becomes the end of the attempt; a pending delivery with a
// zero NextAttemptAt is due again from then.
func (s *Store) Finish(ctx context.Context, id, owner string, f router.Finish) error {
	switch f.Status {
	case router.StatusPending, router.StatusDelivered, router.StatusDead:
	default:
		return fmt.Errorf("sqlite: finish %s: unknown status %q", id, f.Status)
	}
	switch f.Attempt.Outcome {
	case router.OutcomeDelivered, router.OutcomeRetry, router.OutcomeDead:
	default:
		return fmt.Errorf("sqlite: finish %s: unknown outcome %q", id, f.Attempt.Outcome)
	}
	op := &finishOp{id: id, owner: owner, f: f}
	if f.Backpressure {
		op.throttled = 1
	}
	end := f.Attempt.At.Add(f.Attempt.Duration)
	if f.Attempt.At.IsZero() {
		end = time.Now()
	}
	op.updatedAt = unixNano(end)
	if f.Status == router.StatusPending {
		op.next = op.updatedAt // no time given: due again at once
		if !f.NextAttemptAt.IsZero() {
			op.next = unixNano(f.NextAttemptAt)
		}
		if !f.NotBefore.IsZero() {
			op.notBefore = unixNano(f.NotBefore)
		}
	}
	if err := s.submit(ctx, &writeReq{ctx: ctx, finish: op}); err != nil {
		return fmt.Errorf("sqlite: finish %s: %w", id, err)
	}
	return nil
}

// finish runs inside the batch. partial reports that an error came after
// the delivery was updated.
func (b *batch) finish(op *finishOp) (partial bool, err error) {
	f := op.f
	res, err := b.stmt(&b.finishDelivery, b.s.stmtFinish).Exec(
		f.Status, op.next, f.Attempt.Error, f.Attempt.RemoteID, op.updatedAt, op.id, op.owner, op.notBefore, op.throttled)
	if err != nil {
		return false, fmt.Errorf("update delivery: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return true, fmt.Errorf("update delivery: %w", err)
	}
	if n == 0 {
		return false, router.ErrLeaseLost
	}
	a := f.Attempt
	if _, err := b.stmt(&b.insertAttempt, b.s.stmtInsertAttempt).Exec(
		op.id, unixNano(a.At), int64(a.Duration), a.Outcome, a.StatusCode, a.Error, a.RemoteID); err != nil {
		return true, fmt.Errorf("insert attempt: %w", err)
	}
	return false, nil
}

// Release drops the leases of owner, or every lease when owner is "".
func (s *Store) Release(ctx context.Context, owner string) error {
	var err error
	if owner == "" {
		_, err = s.w.ExecContext(ctx, `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
			WHERE lease_owner IS NOT NULL`)
	} else {
		_, err = s.w.ExecContext(ctx, `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
			WHERE lease_owner = ?`, owner)
	}
	if err != nil {
		return fmt.Errorf("sqlite: release %q: %w", owner, err)
	}
	return nil
}

// NextDue returns the earliest time one of sink's pending deliveries can be
// claimed: its next_attempt_at, or its lease's end if that is later.
func (s *Store) NextDue(ctx context.Context, sink string) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.r.QueryRowContext(ctx, sqlNextDue, sink).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sqlite: next due %s: %w", sink, err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromNano(next.Int64), true, nil
}

// PendingCounts counts pending and dead deliveries per sink; sinks with
// neither are absent. OldestDueAge is 0 for a sink with nothing due at now.
func (s *Store) PendingCounts(ctx context.Context, now time.Time) (map[string]router.PendingStat, error) {
	rows, err := s.r.QueryContext(ctx, sqlPendingCounts, unixNano(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: pending counts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]router.PendingStat)
	for rows.Next() {
		var (
			sink          string
			pending, dead int
			oldest        sql.NullInt64
		)
		if err := rows.Scan(&sink, &pending, &oldest, &dead); err != nil {
			return nil, fmt.Errorf("sqlite: pending counts: %w", err)
		}
		st := out[sink]
		st.Pending += pending
		st.Dead += dead
		if oldest.Valid {
			st.OldestDueAge = now.Sub(fromNano(oldest.Int64))
		}
		out[sink] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pending counts: %w", err)
	}
	return out, nil
}
