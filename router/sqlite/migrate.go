package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strings"
	"time"

	"github.com/hookroute/hookroute/internal/migration"
)

// migrationFS holds the schema steps, named NNNN_what.sql. A released step
// is never edited: a change is a new step.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations returns the embedded steps in version order.
func migrations() ([]migration.Step, error) { return migration.Load(migrationFS, "migrations") }

// migrate brings the schema up to date in one transaction, so a crash or a
// failing step leaves the file at its old version, never half-migrated. It
// refuses a file written by a newer binary: running old code on a newer
// schema could lose data silently. It returns the schema version.
func migrate(ctx context.Context, db *sql.DB) (version int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(ms) {
		return 0, fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", version, len(ms))
	}
	editedSchema := false
	for _, m := range ms[version:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return 0, fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		editedSchema = editedSchema || strings.Contains(m.SQL, "writable_schema")
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
			m.Version, time.Now().UnixNano()); err != nil {
			return 0, fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		version = m.Version
	}
	if editedSchema {
		// A step edited sqlite_schema by hand: a new schema cookie makes
		// every connection, this one too, parse the schema again.
		var cookie int64
		if err := tx.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&cookie); err != nil {
			return 0, fmt.Errorf("migrate: read schema cookie: %w", err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA schema_version = %d", cookie+1)); err != nil {
			return 0, fmt.Errorf("migrate: bump schema cookie: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("migrate: commit: %w", err)
	}
	return version, nil
}
