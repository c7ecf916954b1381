package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookroute/hookroute/router"
)

// SetAside ends a claimed delivery without an attempt; see router.Store.
func (s *Store) SetAside(ctx context.Context, id, owner, status, why string, at time.Time) error {
	if status != router.StatusSuppressed && status != router.StatusSilenced && status != router.StatusGrouped {
		return fmt.Errorf("sqlite: set aside %s: status %q is not one a delivery is set aside as", id, status)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE deliveries
		SET status = ?1, last_error = ?2, lease_owner = NULL, lease_until = NULL, updated_at = ?3
		WHERE id = ?4 AND lease_owner = ?5 AND status = 'pending'`, status, why, unixNano(at), id, owner)
	if err != nil {
		return fmt.Errorf("sqlite: set aside %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return router.ErrLeaseLost
	}
	return nil
}

// sqlCooldown takes a cooldown or counts one more suppressed. Every SET
// expression reads the row as it was, so the CASEs agree on whether the
// cooldown changes hands: another delivery's, expired.
const sqlCooldown = `INSERT INTO cooldowns (scope, key, delivery, until, suppressed, carried)
	VALUES (?1, ?2, ?3, ?4, 0, 0)
	ON CONFLICT (scope, key) DO UPDATE SET
		suppressed = CASE WHEN cooldowns.delivery = ?3 THEN cooldowns.suppressed
			WHEN cooldowns.until > ?5 THEN cooldowns.suppressed + 1 ELSE 0 END,
		carried = CASE WHEN cooldowns.delivery <> ?3 AND cooldowns.until <= ?5 THEN cooldowns.suppressed ELSE cooldowns.carried END,
		until = CASE WHEN cooldowns.delivery <> ?3 AND cooldowns.until <= ?5 THEN ?4 ELSE cooldowns.until END,
		delivery = CASE WHEN cooldowns.delivery <> ?3 AND cooldowns.until <= ?5 THEN ?3 ELSE cooldowns.delivery END
	RETURNING delivery, carried`

// Cooldown takes a route's cooldown for a key value; see router.Store.
func (s *Store) Cooldown(ctx context.Context, scope, key, id string, now time.Time, d time.Duration) (string, int, error) {
	var holder string
	var carried int
	if err := s.w.QueryRowContext(ctx, sqlCooldown, scope, key, id, unixNano(now.Add(d)), unixNano(now)).Scan(&holder, &carried); err != nil {
		return "", 0, fmt.Errorf("sqlite: cooldown: %w", err)
	}
	return holder, carried, nil
}

// CooldownHolder reads who holds a cooldown; see router.Store.
func (s *Store) CooldownHolder(ctx context.Context, scope, key string, now time.Time) (string, time.Time, error) {
	var holder string
	var until int64
	err := s.r.QueryRowContext(ctx, `SELECT delivery, until FROM cooldowns WHERE scope = ? AND key = ? AND until > ?`,
		scope, key, unixNano(now)).Scan(&holder, &until)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", time.Time{}, nil
	case err != nil:
		return "", time.Time{}, fmt.Errorf("sqlite: cooldown holder: %w", err)
	}
	return holder, fromNano(until), nil
}

// ReleaseCooldown ends a cooldown its holder no longer earns; see
// router.Store.
func (s *Store) ReleaseCooldown(ctx context.Context, scope, key, delivery string, now time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE cooldowns SET until = ?4 WHERE scope = ?1 AND key = ?2 AND delivery = ?3 AND until > ?4`,
		scope, key, delivery, unixNano(now)); err != nil {
		return fmt.Errorf("sqlite: release cooldown: %w", err)
	}
	return nil
}
