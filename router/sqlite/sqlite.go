// Package sqlite is the embedded implementation of router.Store: one SQLite
// file in WAL mode with synchronous=FULL, through modernc.org/sqlite (pure
// Go, no cgo).
//
// All writes go through one connection, so they serialize in the process
// instead of fighting over the file lock with SQLITE_BUSY retries; reads use
// a separate pool and, thanks to WAL, never wait for the writer. Ingest,
// Claim and Finish are group-committed: one goroutine applies whatever
// requests are queued in one transaction, so that many callers share one
// fsync; batches of delivery bookkeeping alone (claims, finishes) skip the
// fsync and are synced within 10 ms (see committer.go).
//
// Times are stored as integer Unix nanoseconds, UTC; 0 stands for the zero
// time. The store never reads the clock except as a fallback: creation
// times come from the event's ReceivedAt, update times from the attempt,
// lease times from the caller's now.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookroute/hookroute/internal/lograte"
	"github.com/hookroute/hookroute/router"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrClosed is returned by writes made after Close has started.
var ErrClosed = errors.New("sqlite: store closed")

// DefaultMaxBatch is the largest group commit when Options.MaxBatch is 0.
const DefaultMaxBatch = 256

// busyTimeout bounds waits on the file lock. Only another process (a backup,
// the sqlite3 shell) can hold it, as this one funnels its writes through one
// connection.
const busyTimeout = 5 * time.Second

// readConns is the size of the read pool. Readers never block each other or
// the writer under WAL; a few are enough for the API and metrics.
const readConns = 4

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// Logger receives open and commit-failure messages; nil discards them.
	// Commit failures repeat for every batch while they last (a full
	// disk), so they go through a lograte.Limiter.
	Logger *slog.Logger
	// MaxBatch caps how many queued writes share one transaction; 0 means
	// DefaultMaxBatch.
	MaxBatch int
}

// Store is a router.Store backed by one SQLite file. It is safe for
// concurrent use.
type Store struct {
	w    *sql.DB // the single writer connection
	r    *sql.DB // the read pool
	log  *slog.Logger
	logs *lograte.Limiter // for the committer's failures, which repeat per batch

	maxBatch int
	fillWait time.Duration // see committer.go
	reqs     chan *writeReq
	quit     chan struct{} // closed by Close: drain and stop
	done     chan struct{} // closed by the committer when it has stopped

	closeOnce sync.Once
	closeErr  error

	// Prepared on the writer; transactions re-bind them cheaply because
	// the writer pool holds one connection.
	stmtInsertEvent    *sql.Stmt
	stmtInsertDelivery *sql.Stmt
	stmtFinish         *sql.Stmt
	stmtInsertAttempt  *sql.Stmt
	stmtClaim          *sql.Stmt
	stmtClaimEvent     *sql.Stmt

	// Committer-only state: when the oldest commit not yet synced was
	// made (zero: none), see committer.go.
	unsyncedSince time.Time

	stats struct {
		batches, writes, events, duplicates, finishes, failed, largest, relaxed, syncs atomic.Int64
	}
}

var _ router.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path, checks that the
// durability settings took effect, applies pending migrations and starts the
// committer. path is a file name, without the "sqlite:" prefix of the
// config.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	s := &Store{
		log:      opts.Logger,
		logs:     lograte.NewDefault(),
		maxBatch: opts.MaxBatch,
		fillWait: fillWait,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBatch <= 0 {
		s.maxBatch = DefaultMaxBatch
	}

	var err error
	s.w, err = sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {fmt.Sprint(busyTimeout.Milliseconds())},
		"_foreign_keys": {"1"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		// A deferred transaction that reads first and then writes can fail
		// with SQLITE_BUSY when it tries to upgrade; take the write lock at
		// BEGIN instead.
		"_txlock": {"immediate"},
		// Statement journals (the undo of a multi-row UPDATE such as
		// Claim's) spill to a temporary file past 64 KiB, a pwrite per
		// page; in memory they cost a copy, freed at commit.
		"_pragma": {"temp_store(memory)"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	if err := s.open(ctx, path); err != nil {
		s.w.Close()
		if s.r != nil {
			s.r.Close()
		}
		return nil, err
	}

	s.reqs = make(chan *writeReq, s.maxBatch)
	s.quit = make(chan struct{})
	s.done = make(chan struct{})
	go s.commitLoop()
	return s, nil
}

// open does the part of Open that can fail after the writer pool exists.
func (s *Store) open(ctx context.Context, path string) error {
	if err := checkPragmas(ctx, s.w); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	version, err := migrate(ctx, s.w)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	// The writer set WAL mode, which is persistent, so readers need not.
	// query_only turns a write sent to the wrong pool into an error instead
	// of a second writer.
	s.r, err = sql.Open("sqlite", dsn(path, url.Values{
		"_busy_timeout": {fmt.Sprint(busyTimeout.Milliseconds())},
		"_foreign_keys": {"1"},
		"_query_only":   {"1"},
	}))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: read pool: %w", path, err)
	}

	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.stmtInsertEvent, sqlInsertEvent},
		{&s.stmtInsertDelivery, sqlInsertDelivery},
		{&s.stmtFinish, sqlFinish},
		{&s.stmtInsertAttempt, sqlInsertAttempt},
		{&s.stmtClaim, sqlClaim},
		{&s.stmtClaimEvent, sqlClaimEvent},
	} {
		*p.stmt, err = s.w.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("sqlite: open %s: prepare: %w", path, err)
		}
	}
	s.log.Info("sqlite store open", "path", path, "schema_version", version, "max_batch", s.maxBatch)
	return nil
}

// dsn builds a file: URI, so that a path holding '?' or '#' still names the
// file, with the driver's parameters. Every connection the pool opens runs
// them again, so a reconnect cannot silently lose synchronous=FULL.
func dsn(path string, params url.Values) string {
	p := path
	if p != ":memory:" {
		p = filepath.ToSlash(filepath.Clean(path))
	}
	// SQLite decodes %XX in URI paths; only these three would be misread.
	p = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
	if strings.HasPrefix(p, "//") {
		// "file://x" would make x an authority.
		p = "/" + strings.TrimLeft(p, "/")
	}
	return "file:" + p + "?" + params.Encode()
}

// checkPragmas reads back what the DSN asked for: SQLite answers a PRAGMA it
// cannot honour (WAL on a file system without shared memory, an in-memory
// database) by keeping the old value, without an error, and the store's
// promise that an acknowledged event survives a power cut rests on these.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	want := []struct {
		pragma string
		value  int64
	}{
		{"synchronous", 2}, // FULL
		{"foreign_keys", 1},
		{"busy_timeout", busyTimeout.Milliseconds()},
	}
	for _, w := range want {
		var v int64
		if err := db.QueryRowContext(ctx, "PRAGMA "+w.pragma).Scan(&v); err != nil {
			return fmt.Errorf("read %s: %w", w.pragma, err)
		}
		if v != w.value {
			return fmt.Errorf("%s is %d, want %d", w.pragma, v, w.value)
		}
	}
	return nil
}

// sqlProbe is ProbeWrite's upsert.
const sqlProbe = `INSERT INTO ready_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`

// ProbeWrite commits a rewrite of one row through the committer, synced as
// an ingest is, so that it fails where an ingest's commit would: a full
// disk, an unwritable file, a committer that has stopped.
func (s *Store) ProbeWrite(ctx context.Context) error {
	if err := s.submit(ctx, &writeReq{ctx: ctx, probe: true}); err != nil {
		return fmt.Errorf("sqlite: probe write: %w", err)
	}
	return nil
}

// Ping reports whether both connection pools can reach the file.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close stops accepting writes, lets the committer commit and answer what is
// already queued, then closes the database. It is safe to call more than
// once; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		var errs []error
		for _, st := range []*sql.Stmt{s.stmtInsertEvent, s.stmtInsertDelivery, s.stmtFinish, s.stmtInsertAttempt, s.stmtClaim, s.stmtClaimEvent} {
			errs = append(errs, st.Close())
		}
		errs = append(errs, s.r.Close(), s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// Stats counts the committer's work since Open.
type Stats struct {
	Batches      int64 // transactions committed by the committer
	Writes       int64 // Ingest and Finish calls answered from those transactions
	Events       int64 // events inserted (duplicates excluded)
	Duplicates   int64 // Ingest calls that found their event already stored
	Finishes     int64 // Finish calls recorded
	Failed       int64 // calls answered with an error by the committer
	LargestBatch int64 // most writes in one transaction
	Relaxed      int64 // of Batches, those committed without an fsync (claims and finishes only)
	Syncs        int64 // marker commits that synced relaxed ones when nothing else came
}

// AvgBatch is the mean number of writes per committed transaction.
func (st Stats) AvgBatch() float64 {
	if st.Batches == 0 {
		return 0
	}
	return float64(st.Writes) / float64(st.Batches)
}

// GroupCommitStats implements router.GroupCommitter.
func (s *Store) GroupCommitStats() (commits, writes int64) {
	return s.stats.batches.Load(), s.stats.writes.Load()
}

// Stats returns the committer's counters, for metrics and benchmarks.
func (s *Store) Stats() Stats {
	return Stats{
		Batches:      s.stats.batches.Load(),
		Writes:       s.stats.writes.Load(),
		Events:       s.stats.events.Load(),
		Duplicates:   s.stats.duplicates.Load(),
		Finishes:     s.stats.finishes.Load(),
		Failed:       s.stats.failed.Load(),
		LargestBatch: s.stats.largest.Load(),
		Relaxed:      s.stats.relaxed.Load(),
		Syncs:        s.stats.syncs.Load(),
	}
}

// The representable range of int64 Unix nanoseconds (years 1677 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// unixNano maps t to the stored form: the zero time to 0 and times outside
// the int64 range to its ends (a "never" far in the future stays far in the
// future instead of wrapping around).
func unixNano(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// fromNano is the inverse of unixNano.
func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
