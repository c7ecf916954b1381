package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/hookroute/hookroute/router"
)

// defaultListLimit is the page size of ListDeliveries and ListEvents when
// the filter sets none.
const defaultListLimit = 100

// GetEvent returns one event, or router.ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, source, id string) (*router.EventRecord, error) {
	ev, err := scanEvent(s.r.QueryRowContext(ctx, sqlClaimEvent, source, id), source, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get event %s/%s: %w", source, id, err)
	}
	return ev, nil
}

// scanEvent reads the columns of sqlClaimEvent.
func scanEvent(row *sql.Row, source, id string) (*router.EventRecord, error) {
	var (
		recv        int64
		headers     []byte
		matched     []byte
		quarantined int64
		body        []byte
		codec       int64
	)
	ev := &router.EventRecord{Source: source, ID: id}
	if err := row.Scan(&ev.Name, &recv, &headers, &body, &quarantined, &matched, &codec); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, router.ErrNotFound
		}
		return nil, err
	}
	var err error
	if ev.Body, err = decodeBody(body, codec); err != nil {
		return nil, err
	}
	ev.ReceivedAt = fromNano(recv)
	ev.Quarantined = quarantined != 0
	if err := gojson.Unmarshal(headers, &ev.Headers); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	if err := gojson.Unmarshal(matched, &ev.Matched); err != nil {
		return nil, fmt.Errorf("matched: %w", err)
	}
	return ev, nil
}

// deliveryColumns are a delivery's columns as scanDelivery reads them. A
// delivery is leased (in flight) while it is pending with a lease owner,
// whether or not the lease has run out: Finish may still come.
const deliveryColumns = `id, source, event_id, rule, route, sink, status, attempts,
	next_attempt_at, created_at, updated_at, last_error, remote_id,
	lease_owner IS NOT NULL AND status = 'pending', replays,
	COALESCE(replayed_by, ''), COALESCE(replayed_at, 0)`

// scanDelivery reads deliveryColumns.
func scanDelivery(scan func(...any) error) (*router.DeliveryRecord, error) {
	var (
		d                            router.DeliveryRecord
		next, created, upd, replayed int64
		leased                       int64
	)
	if err := scan(&d.ID, &d.Source, &d.EventID, &d.Rule, &d.Route, &d.Sink, &d.Status, &d.Attempts,
		&next, &created, &upd, &d.LastError, &d.RemoteID,
		&leased, &d.Replays, &d.ReplayedBy, &replayed); err != nil {
		return nil, err
	}
	d.NextAttemptAt = fromNano(next)
	d.CreatedAt = fromNano(created)
	d.UpdatedAt = fromNano(upd)
	d.Leased = leased != 0
	d.ReplayedAt = fromNano(replayed)
	return &d, nil
}

// GetDelivery returns one delivery and its attempts, oldest first, read in
// one snapshot so that Attempts and the log agree.
func (s *Store) GetDelivery(ctx context.Context, id string) (*router.DeliveryRecord, error) {
	d, err := s.getDelivery(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get delivery %s: %w", id, err)
	}
	return d, nil
}

func (s *Store) getDelivery(ctx context.Context, id string) (*router.DeliveryRecord, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	d, err := scanDelivery(tx.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = ?`, id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, router.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT at, duration_ns, outcome, status_code, error, remote_id
		FROM attempts WHERE delivery_id = ? ORDER BY n`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a      router.AttemptRecord
			at, ns int64
		)
		if err := rows.Scan(&at, &ns, &a.Outcome, &a.StatusCode, &a.Error, &a.RemoteID); err != nil {
			return nil, err
		}
		a.At = fromNano(at)
		a.Duration = time.Duration(ns)
		d.AttemptLog = append(d.AttemptLog, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return d, nil
}

// ListDeliveries returns deliveries matching f, newest first (created_at,
// then id, both descending), without their attempt logs. The order is the
// one of deliveries_created read backwards, so a page, and the page after
// a cursor, is a range of that index.
func (s *Store) ListDeliveries(ctx context.Context, f router.DeliveryFilter) ([]*router.DeliveryRecord, error) {
	q, args, ok := listDeliveriesQuery(f)
	if !ok {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	defer rows.Close()
	var out []*router.DeliveryRecord
	for rows.Next() {
		d, err := scanDelivery(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	return out, nil
}

// listDeliveriesQuery builds ListDeliveries' query; ok is false when
// nothing can match.
func listDeliveriesQuery(f router.DeliveryFilter) (q string, args []any, ok bool) {
	var where []string
	switch f.Status {
	case "":
	case router.StatusPending, router.StatusDelivered, router.StatusDead, router.StatusSuppressed, router.StatusSilenced, router.StatusGrouped, router.StatusWaiting, router.StatusCancelled:
		// A literal, not a parameter: the planner can only pick the
		// partial indexes of dead deliveries when it sees the value.
		where = append(where, "status = '"+f.Status+"'")
	default:
		return "", nil, false // no delivery has another status
	}
	for _, c := range []struct{ col, val string }{
		{"sink", f.Sink},
		{"rule", f.Rule},
		{"source", f.Source},
		{"event_id", f.EventID},
	} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, unixNano(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, unixNano(f.Until))
	}
	if c := f.After; c != nil {
		// Strictly after the cursor in (created_at, id) descending order.
		// The first term alone bounds the index range.
		at := unixNano(c.At)
		where = append(where, "created_at <= ? AND (created_at < ? OR id < ?)")
		args = append(args, at, at, c.ID)
	}
	q = `SELECT ` + deliveryColumns + ` FROM deliveries`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, listLimit(f.Limit))
	return q, args, true
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
// events_received_at backwards; SQLite sorts each run of equal received_at
// by source and id as it comes, so a page costs its own rows, not the
// table.
//
// INDEXED BY holds the planner to that: without statistics it would rather
// sort the whole table (or, given a source, every event of that source,
// through the primary key) than read an index that gives only the first
// term of the order. Sources are few, so a page of one is still found
// within a few pages of the index. (An index on (received_at, source, id)
// would give the whole order, but replacing events_received_at means
// reading every body in the table while the migration holds the file.)
func (s *Store) ListEvents(ctx context.Context, f router.EventFilter) ([]*router.EventRecord, error) {
	q, args := listEventsQuery(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", err)
	}
	defer rows.Close()
	var out []*router.EventRecord
	for rows.Next() {
		var (
			ev               router.EventRecord
			recv, quarantine int64
			headers, matched []byte
		)
		if err := rows.Scan(&ev.Source, &ev.ID, &ev.Name, &recv, &headers, &quarantine, &matched); err != nil {
			return nil, fmt.Errorf("sqlite: list events: %w", err)
		}
		ev.ReceivedAt = fromNano(recv)
		ev.Quarantined = quarantine != 0
		if err := gojson.Unmarshal(headers, &ev.Headers); err != nil {
			return nil, fmt.Errorf("sqlite: list events: %s/%s: headers: %w", ev.Source, ev.ID, err)
		}
		if err := gojson.Unmarshal(matched, &ev.Matched); err != nil {
			return nil, fmt.Errorf("sqlite: list events: %s/%s: matched: %w", ev.Source, ev.ID, err)
		}
		out = append(out, &ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", err)
	}
	return out, nil
}

// listEventsQuery builds ListEvents' query.
func listEventsQuery(f router.EventFilter) (q string, args []any) {
	var where []string
	if f.Source != "" {
		where = append(where, "source = ?")
		args = append(args, f.Source)
	}
	if f.Name != "" {
		where = append(where, "name = ?")
		args = append(args, f.Name)
	}
	if !f.Since.IsZero() {
		where = append(where, "received_at >= ?")
		args = append(args, unixNano(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "received_at < ?")
		args = append(args, unixNano(f.Until))
	}
	if c := f.After; c != nil {
		// Strictly after the cursor in (received_at, source, id)
		// descending order; the first term bounds the index range.
		at := unixNano(c.At)
		where = append(where, `received_at <= ? AND (received_at < ?
			OR source < ? OR (source = ? AND id < ?))`)
		args = append(args, at, at, c.Source, c.Source, c.ID)
	}
	q = `SELECT source, id, name, received_at, headers, quarantined, matched
		FROM events INDEXED BY events_received_at`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY received_at DESC, source DESC, id DESC LIMIT ?`
	args = append(args, listLimit(f.Limit))
	return q, args
}
