package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/hookroute/hookroute/router"
)

// sqlInsertEvent names no conflict target: a clash on the id or on the
// body hash (events_body_hash) is a duplicate alike.
const sqlInsertEvent = `INSERT INTO events
	(source, id, name, received_at, headers, body, quarantined, matched, body_hash, body_codec)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT DO NOTHING`

// sqlStoredID finds the event a duplicate clashed with: the one with its
// id if there is one, else the one with its body hash.
const sqlStoredID = `SELECT id FROM events
	WHERE source = ?1 AND (id = ?2 OR body_hash = ?3)
	ORDER BY id = ?2 DESC LIMIT 1`

const sqlInsertDelivery = `INSERT INTO deliveries
	(id, source, event_id, rule, route, sink, status, next_attempt_at, created_at, updated_at, lease_owner, lease_until, timer_key)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// ingestOp is an Ingest call, encoded by the caller's goroutine so that the
// committer, the one serial step, only runs SQL. Headers and rule names
// are stored as JSON, written and read (at every claim) with
// goccy/go-json, four times faster than encoding/json at this.
type ingestOp struct {
	ev         *router.EventRecord
	ds         []router.NewDelivery
	receivedAt int64
	headers    []byte
	body       []byte // as stored: see bodyCodec
	bodyCodec  int
	matched    []byte
	bodyHash   []byte // nil: NULL, no second dedup key
}

// Ingest commits ev and ds in one group transaction and returns after the
// commit. A delivery's CreatedAt is the event's ReceivedAt (the time of
// Ingest if that is zero); a zero NextAttemptAt means due at CreatedAt.
func (s *Store) Ingest(ctx context.Context, ev *router.EventRecord, ds []router.NewDelivery) (bool, error) {
	op, err := newIngestOp(ev, ds)
	if err != nil {
		return false, fmt.Errorf("sqlite: ingest: %w", err)
	}
	r := &writeReq{ctx: ctx, ingest: op}
	if err := s.submit(ctx, r); err != nil {
		return false, fmt.Errorf("sqlite: ingest %s/%s: %w", ev.Source, ev.ID, err)
	}
	if r.dup && r.storedID != "" {
		ev.ID = r.storedID
	}
	return r.dup, nil
}

// newIngestOp validates and encodes an Ingest call.
func newIngestOp(ev *router.EventRecord, ds []router.NewDelivery) (*ingestOp, error) {
	if ev == nil {
		return nil, errors.New("nil event")
	}
	if ev.Source == "" || ev.ID == "" {
		return nil, fmt.Errorf("event %q/%q: source and id are required", ev.Source, ev.ID)
	}
	for _, d := range ds {
		if d.ID == "" || d.Sink == "" {
			return nil, fmt.Errorf("event %s/%s: delivery %q to %q: id and sink are required", ev.Source, ev.ID, d.ID, d.Sink)
		}
		if d.LeaseOwner != "" && d.LeaseUntil.IsZero() {
			return nil, fmt.Errorf("event %s/%s: delivery %q: a lease without an end", ev.Source, ev.ID, d.ID)
		}
	}
	if ev.BodyHash != nil && len(ev.BodyHash) == 0 {
		return nil, fmt.Errorf("event %s/%s: an empty body hash", ev.Source, ev.ID)
	}
	op := &ingestOp{ev: ev, ds: ds, body: ev.Body, bodyHash: ev.BodyHash}
	recv := ev.ReceivedAt
	if recv.IsZero() {
		recv = time.Now()
	}
	op.receivedAt = unixNano(recv)
	var err error
	if op.headers, err = gojson.Marshal(ev.Headers); err != nil {
		return nil, fmt.Errorf("event %s/%s: headers: %w", ev.Source, ev.ID, err)
	}
	if op.matched, err = gojson.Marshal(ev.Matched); err != nil {
		return nil, fmt.Errorf("event %s/%s: matched: %w", ev.Source, ev.ID, err)
	}
	op.body, op.bodyCodec = encodeBody(op.body)
	if op.body == nil {
		op.body = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	return op, nil
}

// ingest runs inside the batch: the event, then its deliveries unless the
// event was already there (stored earlier, or earlier in this batch: the
// batch's statements see each other's rows, so two identical bodies in one
// batch clash as two requests apart do). For a duplicate it returns the
// stored event's id. partial reports that an error came after the event
// was written.
func (b *batch) ingest(op *ingestOp) (dup bool, storedID string, partial bool, err error) {
	ev := op.ev
	res, err := b.stmt(&b.insertEvent, b.s.stmtInsertEvent).Exec(
		ev.Source, ev.ID, ev.Name, op.receivedAt, op.headers, op.body, ev.Quarantined, op.matched, op.bodyHash, op.bodyCodec)
	if err != nil {
		return false, "", false, fmt.Errorf("insert event: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, "", true, fmt.Errorf("insert event: %w", err)
	}
	if n == 0 {
		if op.bodyHash == nil {
			return true, ev.ID, false, nil // only the id can have clashed
		}
		// Duplicates are few: this query is not worth a prepared statement.
		if err := b.tx.QueryRow(sqlStoredID, ev.Source, ev.ID, op.bodyHash).Scan(&storedID); err != nil {
			return false, "", false, fmt.Errorf("find the stored event: %w", err)
		}
		return true, storedID, false, nil
	}
	ins := b.stmt(&b.insertDelivery, b.s.stmtInsertDelivery)
	for _, d := range op.ds {
		next := op.receivedAt // no time given: due at once
		if !d.NextAttemptAt.IsZero() {
			next = unixNano(d.NextAttemptAt)
		}
		var owner, until any // NULL: not leased
		if d.LeaseOwner != "" {
			owner, until = d.LeaseOwner, unixNano(d.LeaseUntil)
		}
		status, timer := router.StatusPending, any(nil)
		if d.TimerKey != "" {
			status, timer = router.StatusWaiting, d.TimerKey
		}
		if _, err := ins.Exec(d.ID, ev.Source, ev.ID, d.Rule, d.Route, d.Sink, status,
			next, op.receivedAt, op.receivedAt, owner, until, timer); err != nil {
			return false, "", true, fmt.Errorf("insert delivery %s: %w", d.ID, err)
		}
	}
	return false, "", false, nil
}
