package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/router"
)

// defaultListLimit is the page size of ListDeliveries and ListEvents when
// the filter sets none.
const defaultListLimit = 100

const sqlGetEvent = `SELECT name, received_at, headers, body, quarantined, matched
	FROM events WHERE source = $1 AND id = $2`

// GetEvent returns one event, or router.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, source, id string) (*router.EventRecord, error) {
	ev := &router.EventRecord{Source: source, ID: id}
	err := s.pool.QueryRow(ctx, sqlGetEvent, source, id).Scan(
		&ev.Name, &ev.ReceivedAt, &ev.Headers, &ev.Body, &ev.Quarantined, &ev.Matched)
	if errors.Is(err, pgx.ErrNoRows) {
		err = router.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get event %s/%s: %w", source, id, err)
	}
	return ev, nil
}

// deliveryColumns are a delivery's columns as deliveryDest scans them. A
// delivery is leased (in flight) while it is pending with a lease owner,
// whether or not the lease has run out: Finish may still come. A delivery
// never replayed has NULL replayed_at, read as the zero time.
const deliveryColumns = `d.id, d.source, d.event_id, d.rule, d.route, d.sink, d.status, d.attempts,
	d.next_attempt_at, d.created_at, d.updated_at, d.last_error, d.remote_id,
	d.lease_owner IS NOT NULL AND d.status = 'pending', d.replays,
	COALESCE(d.replayed_by, ''), COALESCE(d.replayed_at, '0001-01-01 00:00:00+00')`

// deliveryDest returns the scan destinations of deliveryColumns.
func deliveryDest(d *router.DeliveryRecord) []any {
	return []any{&d.ID, &d.Source, &d.EventID, &d.Rule, &d.Route, &d.Sink, &d.Status, &d.Attempts,
		&d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.LastError, &d.RemoteID,
		&d.Leased, &d.Replays, &d.ReplayedBy, &d.ReplayedAt}
}

// sqlGetDelivery reads a delivery and its attempts in one statement, so in
// one snapshot: Attempts and the log agree. A delivery without attempts
// comes as one row of NULL attempt columns.
const sqlGetDelivery = `SELECT ` + deliveryColumns + `,
	a.at, a.duration_ns, a.outcome, a.status_code, a.error, a.remote_id
	FROM deliveries d LEFT JOIN attempts a ON a.delivery_id = d.id
	WHERE d.id = $1
	ORDER BY a.n`

// GetDelivery returns one delivery and its attempts, oldest first, or
// router.ErrNotFound.
func (s *Store) GetDelivery(ctx context.Context, id string) (*router.DeliveryRecord, error) {
	rows, err := s.pool.Query(ctx, sqlGetDelivery, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: get delivery %s: %w", id, err)
	}
	defer rows.Close()
	var d *router.DeliveryRecord
	for rows.Next() {
		var (
			row      router.DeliveryRecord
			at       *time.Time
			ns       *int64
			outcome  *string
			code     *int
			msg, rid *string
		)
		if err := rows.Scan(append(deliveryDest(&row), &at, &ns, &outcome, &code, &msg, &rid)...); err != nil {
			return nil, fmt.Errorf("postgres: get delivery %s: %w", id, err)
		}
		if d == nil {
			d = &row
		}
		if at != nil { // the columns are NOT NULL: all or none are
			d.AttemptLog = append(d.AttemptLog, router.AttemptRecord{
				At: *at, Duration: time.Duration(*ns), Outcome: *outcome,
				StatusCode: *code, Error: *msg, RemoteID: *rid,
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: get delivery %s: %w", id, err)
	}
	if d == nil {
		return nil, fmt.Errorf("postgres: get delivery %s: %w", id, router.ErrNotFound)
	}
	return d, nil
}

// ListDeliveries returns deliveries matching f, newest first (created_at,
// then id, both descending), without their attempt logs. The order is the
// one of deliveries_created read backwards, so a page, and the page after
// a cursor, is a range of that index.
func (s *Store) ListDeliveries(ctx context.Context, f router.DeliveryFilter) ([]*router.DeliveryRecord, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	switch f.Status {
	case "":
	case router.StatusPending, router.StatusDelivered, router.StatusDead, router.StatusSuppressed, router.StatusSilenced, router.StatusGrouped, router.StatusWaiting, router.StatusCancelled:
		// A literal, not a parameter: pgx prepares statements, and a
		// generic plan could not pick the partial indexes of dead
		// deliveries, which only match the value 'dead'.
		where = append(where, "d.status = '"+f.Status+"'")
	default:
		return nil, nil // no delivery has another status
	}
	for _, c := range []struct{ col, val string }{
		{"d.sink", f.Sink},
		{"d.rule", f.Rule},
		{"d.source", f.Source},
		{"d.event_id", f.EventID},
	} {
		if c.val != "" {
			where = append(where, c.col+" = "+arg(c.val))
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "d.created_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "d.created_at < "+arg(f.Until))
	}
	if c := f.After; c != nil {
		// Strictly after the cursor in (created_at, id) descending order:
		// a row comparison, which the btree of deliveries_created takes
		// as a range bound. id is COLLATE "C", like the index.
		where = append(where, "(d.created_at, d.id) < ("+arg(c.At)+"::timestamptz, "+arg(c.ID)+"::text)")
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries d`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY d.created_at DESC, d.id DESC LIMIT ` + arg(listLimit(f.Limit))

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	defer rows.Close()
	var out []*router.DeliveryRecord
	for rows.Next() {
		d := new(router.DeliveryRecord)
		if err := rows.Scan(deliveryDest(d)...); err != nil {
			return nil, fmt.Errorf("postgres: list deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	return out, nil
}

// listLimit is a listing's page size: limit, or defaultListLimit if it is
// not positive.
func listLimit(limit int) int {
	if limit <= 0 {
		return defaultListLimit
	}
	return limit
}

// ListEvents returns events matching f, newest first (received_at, then
// source and id, all descending), without their bodies. It reads
// events_received_at backwards and sorts each run of equal received_at by
// source and id (an incremental sort), so a page costs its own rows, not
// the table. source and id compare byte-wise (COLLATE "C"), as in SQLite
// and as delivery ids do, whatever the database's locale.
func (s *Store) ListEvents(ctx context.Context, f router.EventFilter) ([]*router.EventRecord, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Source != "" {
		where = append(where, "source = "+arg(f.Source))
	}
	if f.Name != "" {
		where = append(where, "name = "+arg(f.Name))
	}
	if !f.Since.IsZero() {
		where = append(where, "received_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "received_at < "+arg(f.Until))
	}
	if c := f.After; c != nil {
		// Strictly after the cursor in (received_at, source, id)
		// descending order; the first term bounds the index range.
		at, src, id := arg(c.At), arg(c.Source), arg(c.ID)
		where = append(where, `received_at <= `+at+`::timestamptz AND (received_at < `+at+`::timestamptz
			OR (source COLLATE "C", id COLLATE "C") < (`+src+`::text, `+id+`::text))`)
	}
	q := `SELECT source, id, name, received_at, headers, quarantined, matched FROM events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY received_at DESC, source COLLATE "C" DESC, id COLLATE "C" DESC LIMIT ` + arg(listLimit(f.Limit))

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list events: %w", err)
	}
	defer rows.Close()
	var out []*router.EventRecord
	for rows.Next() {
		ev := new(router.EventRecord)
		if err := rows.Scan(&ev.Source, &ev.ID, &ev.Name, &ev.ReceivedAt, &ev.Headers, &ev.Quarantined, &ev.Matched); err != nil {
			return nil, fmt.Errorf("postgres: list events: %w", err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list events: %w", err)
	}
	return out, nil
}
