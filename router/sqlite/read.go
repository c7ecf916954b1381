package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookroute/hookroute/router"
)

// defaultListLimit is the page size of ListDeliveries when the filter sets
// none.
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
	)
	ev := &router.EventRecord{Source: source, ID: id}
	if err := row.Scan(&ev.Name, &recv, &headers, &ev.Body, &quarantined, &matched); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, router.ErrNotFound
		}
		return nil, err
	}
	ev.ReceivedAt = fromNano(recv)
	ev.Quarantined = quarantined != 0
	if err := json.Unmarshal(headers, &ev.Headers); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	if err := json.Unmarshal(matched, &ev.Matched); err != nil {
		return nil, fmt.Errorf("matched: %w", err)
	}
	return ev, nil
}

const deliveryColumns = `id, source, event_id, rule, route, sink, status, attempts,
	next_attempt_at, created_at, updated_at, last_error, remote_id`

// scanDelivery reads deliveryColumns.
func scanDelivery(scan func(...any) error) (*router.DeliveryRecord, error) {
	var (
		d                  router.DeliveryRecord
		next, created, upd int64
	)
	if err := scan(&d.ID, &d.Source, &d.EventID, &d.Rule, &d.Route, &d.Sink, &d.Status, &d.Attempts,
		&next, &created, &upd, &d.LastError, &d.RemoteID); err != nil {
		return nil, err
	}
	d.NextAttemptAt = fromNano(next)
	d.CreatedAt = fromNano(created)
	d.UpdatedAt = fromNano(upd)
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
// then id, both descending), without their attempt logs.
func (s *Store) ListDeliveries(ctx context.Context, f router.DeliveryFilter) ([]*router.DeliveryRecord, error) {
	var (
		where []string
		args  []any
	)
	switch f.Status {
	case "":
	case router.StatusPending, router.StatusDelivered, router.StatusDead:
		// A literal, not a parameter: the planner can only pick the
		// partial index of dead deliveries when it sees the value.
		where = append(where, "status = '"+f.Status+"'")
	default:
		return nil, nil // no delivery has another status
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
	q := `SELECT ` + deliveryColumns + ` FROM deliveries`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit)

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
