package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookroute/hookroute/internal/migration"
)

// migrationFS holds the schema steps, named NNNN_what.sql. A released step
// is never edited: a change is a new step.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the advisory lock that serializes migrations: any
// 64-bit constant unlikely to collide with another application's ("hookrout"
// in ASCII). It is per database, not per schema, which only makes
// installations in other schemas wait a moment at start.
const migrateLockKey int64 = 0x686f6f6b726f7574

// migrations returns the embedded steps in version order.
func migrations() ([]migration.Step, error) { return migration.Load(migrationFS, "migrations") }

// migrate brings the schema up to date in one transaction (PostgreSQL's DDL
// is transactional), so a failing step leaves the database at its old
// version, never half-migrated. The transaction first takes an advisory
// lock: replicas starting together then migrate one after the other, and
// the later ones find nothing left to do, instead of racing on CREATE TABLE.
// It refuses a database written by a newer binary: running old code on a
// newer schema could lose data silently. It returns the schema version.
func migrate(ctx context.Context, pool *pgxpool.Pool) (version int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(ctx) // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return 0, fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer     NOT NULL PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(ms) {
		return 0, fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", version, len(ms))
	}
	for _, m := range ms[version:] {
		// No arguments: pgx sends it with the simple protocol, which runs
		// a file of several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return 0, fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version) VALUES ($1)", m.Version); err != nil {
			return 0, fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		version = m.Version
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("migrate: commit: %w", err)
	}
	return version, nil
}
