// Package postgres is the implementation of router.Store for several
// replicas sharing one PostgreSQL database, through github.com/jackc/pgx/v5.
//
// It mirrors the SQLite store (router/sqlite): the same tables, the same
// semantics, the same conformance suite (router/storetest). What differs:
//
//   - Every write is one SQL statement. Ingests are group-committed
//     (committer.go): the ones waiting go as one pipelined batch in one
//     transaction, one round trip and one WAL flush per batch. Other
//     writes are one implicit transaction each; connections write in
//     parallel, where SQLite has one writer.
//   - Claim locks its rows with FOR UPDATE SKIP LOCKED, so replicas claiming
//     from the same sink neither wait for each other nor take the same row.
//   - Ingest sends a NOTIFY per sink on the channel of Options.Channel, in
//     the ingest's transaction, so that it is delivered if and only if the
//     deliveries are committed; Listen turns them into wake-ups on the other
//     replicas (router.Notifier).
//   - Release("") takes the leases of every replica, so, unlike with
//     SQLite, it must not be called at start: other replicas may hold
//     leases, and a crashed replica's leases simply run out.
//
// The tables live in the first schema of the connection's search_path, so
// one database can hold several installations (or test runs): set it in
// the URL, e.g. postgres://host/db?search_path=hookroute.
//
// Times are timestamptz, which keeps microseconds: finer parts are
// truncated. The zero time is stored as 0001-01-01 UTC and read back as the
// zero time. Durability is PostgreSQL's: an Ingest is acknowledged after its
// commit, which is flushed to disk unless the server or role runs with
// synchronous_commit=off.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookroute/hookroute/router"
)

// ErrClosed is returned by Listen once Close has been called.
var ErrClosed = errors.New("postgres: store closed")

// DefaultMaxConns is the pool size when Options.MaxConns is 0.
const DefaultMaxConns = 16

// DefaultChannel is the LISTEN/NOTIFY channel when Options.Channel is "".
const DefaultChannel = "hookroute_due"

// maxChannelLen is PostgreSQL's identifier limit (NAMEDATALEN-1): pg_notify
// rejects a longer channel, while LISTEN would silently truncate it and
// never hear a thing.
const maxChannelLen = 63

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// Logger receives open and Listen messages; nil discards them.
	Logger *slog.Logger
	// MaxConns caps the connection pool; 0 means DefaultMaxConns. It
	// overrides pool_max_conns in the URL. Listen's connection is extra.
	MaxConns int32
	// Channel is the LISTEN/NOTIFY channel; "" means DefaultChannel.
	// Replicas that share a database must use the same one, installations
	// that share a database (in different schemas) should not.
	Channel string
}

// Store is a router.Store (and a router.Notifier) backed by a PostgreSQL
// connection pool. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	channel string

	// ctx ends at Close, to stop the Listen loops, which hold connections
	// of their own.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // guards closed and listeners.Add
	closed    bool
	listeners sync.WaitGroup
	closeOnce sync.Once

	// onListen, when set (by tests), is called with the backend pid each
	// time Listen has (re)connected and is listening.
	onListen func(pid uint32)

	// ingests feed the group committers (committer.go); commitDone is
	// closed once they have stopped, at Close.
	ingests    chan *ingestReq
	committing sync.WaitGroup
	commitDone chan struct{}
	// onBatch, when set (by tests), is called after each batch of more
	// than one ingest with its size and error.
	onBatch func(n int, err error)
}

var (
	_ router.Store    = (*Store)(nil)
	_ router.Notifier = (*Store)(nil)
)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx parses them), applies pending migrations and
// returns the store. Several replicas may Open the same database at once:
// migrations are serialized by an advisory lock.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors quote the connection string, and redact the
		// password only on a best-effort basis, so they are not passed on.
		return nil, errors.New("postgres: open: cannot parse the connection string (details withheld: they may quote a password)")
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MinConns > cfg.MaxConns {
		cfg.MinConns = cfg.MaxConns
	}
	cfg.AfterConnect = afterConnect
	channel := opts.Channel
	if channel == "" {
		channel = DefaultChannel
	}
	if len(channel) > maxChannelLen {
		return nil, fmt.Errorf("postgres: open: channel %q is longer than %d bytes", channel, maxChannelLen)
	}

	s := &Store{log: opts.Logger, channel: channel}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	version, err := migrate(ctx, s.pool)
	if err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: open %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.startCommitters()
	s.log.Info("postgres store open", "host", cfg.ConnConfig.Host, "database", cfg.ConnConfig.Database,
		"schema_version", version, "max_conns", cfg.MaxConns, "channel", channel)
	return s, nil
}

// afterConnect makes timestamptz values scan in UTC, as the SQLite store
// returns them, rather than in the process's local zone.
func afterConnect(_ context.Context, c *pgx.Conn) error {
	c.TypeMap().RegisterType(&pgtype.Type{
		Name:  "timestamptz",
		OID:   pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}

// ProbeWrite commits a rewrite of one row, as durably as an ingest
// (synchronous_commit as the database sets it), so that it fails where an
// ingest would: a full disk, a server that went read-only (a standby after
// a failover), a lost connection. Replicas share the row: the last write
// wins, and the row lock is held for one statement.
func (s *Store) ProbeWrite(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO ready_probe (id, at) VALUES (1, now())
		ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at`); err != nil {
		return fmt.Errorf("postgres: probe write: %w", err)
	}
	return nil
}

// Ping reports whether the database can be reached.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close stops the Listen loops, waits for them to drop their connections,
// and closes the pool, waiting for connections in use to be returned. It is
// safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.cancel()
		s.mu.Unlock()
		s.listeners.Wait()
		s.committing.Wait()
		close(s.commitDone)
		s.pool.Close()
	})
	return nil
}
