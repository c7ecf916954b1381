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

// defaultListLimit is the page size of ListDeliveries when the filter sets
// none.
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

const deliveryColumns = `d.id, d.source, d.event_id, d.rule, d.route, d.sink, d.status, d.attempts,
	d.next_attempt_at, d.created_at, d.updated_at, d.last_error, d.remote_id`

// deliveryDest returns the scan destinations of deliveryColumns.
func deliveryDest(d *router.DeliveryRecord) []any {
	return []any{&d.ID, &d.Source, &d.EventID, &d.Rule, &d.Route, &d.Sink, &d.Status, &d.Attempts,
		&d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.LastError, &d.RemoteID}
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
// then id, both descending), without their attempt logs.
func (s *Store) ListDeliveries(ctx context.Context, f router.DeliveryFilter) ([]*router.DeliveryRecord, error) {
	var (
		where []string
		args  []any
	)
	switch f.Status {
	case "":
	case router.StatusPending, router.StatusDelivered, router.StatusDead:
		// A literal, not a parameter: pgx prepares statements, and a
		// generic plan could not pick the partial index of dead
		// deliveries, which only matches the value 'dead'.
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
			args = append(args, c.val)
			where = append(where, c.col+" = $"+strconv.Itoa(len(args)))
		}
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries d`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	args = append(args, limit)
	q += ` ORDER BY d.created_at DESC, d.id DESC LIMIT $` + strconv.Itoa(len(args))

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
