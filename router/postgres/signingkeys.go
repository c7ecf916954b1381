package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookroute/hookroute/router"
)

// sqlCreateSigningKey inserts the key only while the sink has fewer than
// the maximum. It runs after the sink's advisory lock is taken, as its own
// statement, so that its snapshot sees every key committed by whoever held
// the lock before: two replicas racing cannot both pass the count.
const sqlCreateSigningKey = `INSERT INTO signing_keys (sink, key_id, public_pem, sealed_private, created_at)
	SELECT $1, $2, $3, $4, $5
	WHERE (SELECT count(*) FROM signing_keys WHERE sink = $1) < $6`

// CreateSigningKey records a signing key; see router.Store. Unlike the
// other writes it takes a transaction: the limit needs a lock, and key
// creation is rare.
func (s *Store) CreateSigningKey(ctx context.Context, sink, keyID string, publicPEM, sealedPrivate []byte, at time.Time) error {
	if sink == "" || keyID == "" || len(publicPEM) == 0 || len(sealedPrivate) == 0 {
		return errors.New("postgres: create signing key: empty sink, id or key")
	}
	if at.IsZero() {
		at = time.Now()
	}
	var inserted int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('hookroute.signing_keys:' || $1, 0))`, sink); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sqlCreateSigningKey, sink, keyID, publicPEM, sealedPrivate, at.UTC(), router.MaxSigningKeys)
		inserted = tag.RowsAffected()
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("postgres: create signing key for %s: %w", sink, err)
	case inserted == 0:
		return fmt.Errorf("postgres: create signing key for %s: %w", sink, router.ErrKeyLimit)
	}
	return nil
}

// SigningKeys returns a sink's signing keys, oldest first; see
// router.Store.
func (s *Store) SigningKeys(ctx context.Context, sink string) ([]router.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT key_id, public_pem, sealed_private, created_at
		FROM signing_keys WHERE sink = $1 ORDER BY created_at, key_id`, sink)
	if err != nil {
		return nil, fmt.Errorf("postgres: signing keys of %s: %w", sink, err)
	}
	defer rows.Close()
	var out []router.SigningKey
	for rows.Next() {
		k := router.SigningKey{Sink: sink}
		if err := rows.Scan(&k.ID, &k.PublicPEM, &k.SealedPrivate, &k.CreatedAt); err != nil {
			return nil, fmt.Errorf("postgres: signing keys of %s: %w", sink, err)
		}
		k.CreatedAt = k.CreatedAt.UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: signing keys of %s: %w", sink, err)
	}
	return out, nil
}

// DeleteSigningKey deletes one signing key; see router.Store.
func (s *Store) DeleteSigningKey(ctx context.Context, sink, keyID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM signing_keys WHERE sink = $1 AND key_id = $2`, sink, keyID)
	if err != nil {
		return fmt.Errorf("postgres: delete signing key %s of %s: %w", keyID, sink, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete signing key %s of %s: %w", keyID, sink, router.ErrNotFound)
	}
	return nil
}
