package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// sqlCreateSigningKey inserts the key only while the sink has fewer than
// the maximum: the count and the insert are one statement on the single
// writer connection, so two callers cannot both pass the check.
const sqlCreateSigningKey = `INSERT INTO signing_keys (sink, key_id, public_pem, sealed_private, created_at)
	SELECT ?1, ?2, ?3, ?4, ?5
	WHERE (SELECT COUNT(*) FROM signing_keys WHERE sink = ?1) < ?6`

// CreateSigningKey records a signing key; see router.Store.
func (s *Store) CreateSigningKey(ctx context.Context, sink, keyID string, publicPEM, sealedPrivate []byte, at time.Time) error {
	if sink == "" || keyID == "" || len(publicPEM) == 0 || len(sealedPrivate) == 0 {
		return errors.New("sqlite: create signing key: empty sink, id or key")
	}
	if at.IsZero() {
		at = time.Now()
	}
	res, err := s.w.ExecContext(ctx, sqlCreateSigningKey, sink, keyID, publicPEM, sealedPrivate, unixNano(at), router.MaxSigningKeys)
	if err != nil {
		return fmt.Errorf("sqlite: create signing key for %s: %w", sink, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: create signing key for %s: %w", sink, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: create signing key for %s: %w", sink, router.ErrKeyLimit)
	}
	return nil
}

// SigningKeys returns a sink's signing keys, oldest first; see
// router.Store.
func (s *Store) SigningKeys(ctx context.Context, sink string) ([]router.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key_id, public_pem, sealed_private, created_at
		FROM signing_keys WHERE sink = ? ORDER BY created_at, key_id`, sink)
	if err != nil {
		return nil, fmt.Errorf("sqlite: signing keys of %s: %w", sink, err)
	}
	defer rows.Close()
	var out []router.SigningKey
	for rows.Next() {
		k := router.SigningKey{Sink: sink}
		var at int64
		if err := rows.Scan(&k.ID, &k.PublicPEM, &k.SealedPrivate, &at); err != nil {
			return nil, fmt.Errorf("sqlite: signing keys of %s: %w", sink, err)
		}
		k.CreatedAt = fromNano(at)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: signing keys of %s: %w", sink, err)
	}
	return out, nil
}

// DeleteSigningKey deletes one signing key; see router.Store.
func (s *Store) DeleteSigningKey(ctx context.Context, sink, keyID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM signing_keys WHERE sink = ? AND key_id = ?`, sink, keyID)
	if err != nil {
		return fmt.Errorf("sqlite: delete signing key %s of %s: %w", keyID, sink, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete signing key %s of %s: %w", keyID, sink, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: delete signing key %s of %s: %w", keyID, sink, router.ErrNotFound)
	}
	return nil
}
