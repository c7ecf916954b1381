package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/router"
)

// sqlIngest is all of Ingest in one statement, run in a group commit's
// batch (committer.go). The deliveries are inserted only if the event
// was, which makes a duplicate write nothing. When two connections ingest
// the same event at once, the unique key makes the second INSERT wait for
// the first transaction and then do nothing: it reports a duplicate, not
// an error. pg_notify queues one notification per distinct sink; PostgreSQL
// sends them at commit, and drops them on rollback.
//
// ON CONFLICT names no target, so a clash on the body hash
// (events_body_hash) is a duplicate as one on the id is; the waiting
// applies to either key.
//
// The final SELECT counts woken only to make it run: PostgreSQL skips a
// plain SELECT in WITH that nothing reads.
//
// The deliveries travel as parallel arrays, so that the statement is the
// same whatever their number and its prepared plan is reused. Deliveries
// leased at insert (NewDelivery.LeaseOwner) wake no replica: the one that
// holds the lease has them in memory, and the others could not claim them.
const sqlIngest = `WITH ev AS (
	INSERT INTO events (source, id, name, received_at, headers, body, quarantined, matched, body_hash)
	VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8::jsonb, $15)
	ON CONFLICT DO NOTHING
	RETURNING 1
), ds AS (
	INSERT INTO deliveries (id, source, event_id, rule, route, sink, next_attempt_at, created_at, updated_at, lease_owner, lease_until, status, timer_key)
	SELECT d.id, $1, $2, d.rule, d.route, d.sink, d.next, $4, $4, d.owner, d.until,
		CASE WHEN d.timer IS NULL THEN 'pending' ELSE 'waiting' END, d.timer
	FROM unnest($9::text[], $10::text[], $11::integer[], $12::text[], $13::timestamptz[], $16::text[], $17::timestamptz[], $18::text[])
		AS d (id, rule, route, sink, next, owner, until, timer)
	WHERE EXISTS (SELECT FROM ev)
	RETURNING sink, lease_owner, status
), woken AS (
	SELECT pg_notify($14, sink) FROM (SELECT DISTINCT sink FROM ds WHERE lease_owner IS NULL AND status = 'pending') AS s
)
SELECT EXISTS (SELECT FROM ev), (SELECT count(*) FROM woken)`

// sqlStoredID finds the event a duplicate clashed with: the one with its
// id if there is one, else the one with its body hash. It is a statement
// of its own: sqlIngest's snapshot predates the transaction it waited
// for, whose row it therefore cannot read.
const sqlStoredID = `SELECT id FROM events
	WHERE source = $1 AND (id = $2 OR body_hash = $3)
	ORDER BY id = $2 DESC LIMIT 1`

// Ingest stores ev and ds, and wakes the sinks' workers on every replica,
// in one transaction; it returns after the commit. A delivery's CreatedAt
// is the event's ReceivedAt (the time of Ingest if that is zero); a zero
// NextAttemptAt means due at CreatedAt.
func (s *Store) Ingest(ctx context.Context, ev *router.EventRecord, ds []router.NewDelivery) (bool, error) {
	args, err := s.ingestArgs(ev, ds)
	if err != nil {
		return false, fmt.Errorf("postgres: ingest: %w", err)
	}
	// pgx may notice a cancelled context only once the statement is on
	// its way; check first, so that nothing is sent at all.
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("postgres: ingest %s/%s: %w", ev.Source, ev.ID, err)
	}
	inserted, err := s.ingest(ctx, args)
	if err != nil {
		return false, fmt.Errorf("postgres: ingest %s/%s: %w", ev.Source, ev.ID, err)
	}
	if inserted || ev.BodyHash == nil {
		return !inserted, nil // a duplicate without a body hash clashed on its id
	}
	// If the stored event was pruned in between, ev keeps its own id.
	var stored string
	switch err := s.pool.QueryRow(ctx, sqlStoredID, ev.Source, ev.ID, ev.BodyHash).Scan(&stored); {
	case err == nil:
		ev.ID = stored
	case !errors.Is(err, pgx.ErrNoRows):
		return false, fmt.Errorf("postgres: ingest %s/%s: find the stored event: %w", ev.Source, ev.ID, err)
	}
	return true, nil
}

// ingestArgs validates an Ingest call and encodes its arguments.
func (s *Store) ingestArgs(ev *router.EventRecord, ds []router.NewDelivery) ([]any, error) {
	if err := checkEvent(ev); err != nil {
		return nil, err
	}
	recv := ev.ReceivedAt
	if recv.IsZero() {
		recv = time.Now()
	}
	headers, matched, err := eventJSON(ev)
	if err != nil {
		return nil, err
	}
	body := ev.Body
	if body == nil {
		body = []byte{} // the column is NOT NULL; nil would bind as NULL
	}
	d, err := deliveryArrays(ev, ds, recv)
	if err != nil {
		return nil, err
	}
	return []any{
		ev.Source, ev.ID, ev.Name, recv, headers, body, ev.Quarantined, matched,
		d.ids, d.rules, d.routes, d.sinks, d.nexts, s.channel, ev.BodyHash, d.owners, d.untils, d.timers,
	}, nil
}

func checkEvent(ev *router.EventRecord) error {
	if ev == nil {
		return errors.New("nil event")
	}
	if ev.Source == "" || ev.ID == "" {
		return fmt.Errorf("event %q/%q: source and id are required", ev.Source, ev.ID)
	}
	if ev.BodyHash != nil && len(ev.BodyHash) == 0 {
		return fmt.Errorf("event %s/%s: an empty body hash", ev.Source, ev.ID)
	}
	return nil
}

// eventJSON encodes the event's headers and matched rules for their JSON
// columns.
func eventJSON(ev *router.EventRecord) (headers, matched string, err error) {
	// nil would be stored as JSON null; an empty object or array keeps the
	// columns' shape uniform for SQL queries.
	headers, matched = "{}", "[]"
	if len(ev.Headers) > 0 {
		b, err := json.Marshal(ev.Headers)
		if err != nil {
			return "", "", fmt.Errorf("event %s/%s: headers: %w", ev.Source, ev.ID, err)
		}
		headers = string(b)
	}
	if len(ev.Matched) > 0 {
		b, err := json.Marshal(ev.Matched)
		if err != nil {
			return "", "", fmt.Errorf("event %s/%s: matched: %w", ev.Source, ev.ID, err)
		}
		matched = string(b)
	}
	return headers, matched, nil
}

// ingestDeliveries are an Ingest call's deliveries as one array per column,
// so that one statement inserts them all.
type ingestDeliveries struct {
	ids, rules, sinks []string
	routes            []int32
	nexts             []time.Time
	owners            []*string // nil: not leased
	untils            []*time.Time
	timers            []*string // nil: not waiting
}

func deliveryArrays(ev *router.EventRecord, ds []router.NewDelivery, recv time.Time) (ingestDeliveries, error) {
	d := ingestDeliveries{
		ids:    make([]string, len(ds)),
		rules:  make([]string, len(ds)),
		routes: make([]int32, len(ds)),
		sinks:  make([]string, len(ds)),
		nexts:  make([]time.Time, len(ds)),
		owners: make([]*string, len(ds)),
		untils: make([]*time.Time, len(ds)),
		timers: make([]*string, len(ds)),
	}
	for i, nd := range ds {
		if nd.ID == "" || nd.Sink == "" {
			return d, fmt.Errorf("event %s/%s: delivery %q to %q: id and sink are required", ev.Source, ev.ID, nd.ID, nd.Sink)
		}
		d.ids[i], d.rules[i], d.routes[i], d.sinks[i], d.nexts[i] = nd.ID, nd.Rule, int32(nd.Route), nd.Sink, nd.NextAttemptAt
		if nd.NextAttemptAt.IsZero() {
			d.nexts[i] = recv // no time given: due at once
		}
		if nd.LeaseOwner != "" {
			if nd.LeaseUntil.IsZero() {
				return d, fmt.Errorf("event %s/%s: delivery %q: a lease without an end", ev.Source, ev.ID, nd.ID)
			}
			d.owners[i], d.untils[i] = &nd.LeaseOwner, &nd.LeaseUntil
		}
		if nd.TimerKey != "" {
			d.timers[i] = &nd.TimerKey
		}
	}
	return d, nil
}
