package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Group commit of ingests. Each ingest is one statement (sqlIngest), but
// run one transaction each they cost one round trip and one commit apiece,
// and a commit waits for its WAL flush. The committers gather the ingests
// waiting when they are free, send them as one pipelined batch in one
// transaction and commit once, so a burst costs a round trip and a flush
// per batch. Nothing is acknowledged before its batch has committed.
//
// A batch that fails for one of its ingests (a deadlock with another
// replica's batch taking the same events in another order, a statement
// error) is rolled back and its ingests run again one by one, each in its
// own transaction as before, so that one bad ingest fails alone.

// committers is how many batches may be in flight at once: one commits
// while the next gathers.
const committers = 2

// maxIngestBatch bounds a batch: the time the first ingest waits for the
// last one's statement.
const maxIngestBatch = 64

// ingestReq is one Ingest waiting for its batch.
type ingestReq struct {
	ctx      context.Context
	args     []any
	inserted bool
	err      error
	done     chan struct{}
}

// startCommitters starts the goroutines that run ingest batches until
// the store closes.
func (s *Store) startCommitters() {
	s.ingests = make(chan *ingestReq, maxIngestBatch*committers)
	s.commitDone = make(chan struct{})
	for range committers {
		s.committing.Add(1)
		go func() {
			defer s.committing.Done()
			s.commitLoop()
		}()
	}
}

// ingest runs sqlIngest with args in the next batch and reports whether
// the event was inserted (false: a duplicate).
func (s *Store) ingest(ctx context.Context, args []any) (bool, error) {
	r := &ingestReq{ctx: ctx, args: args, done: make(chan struct{})}
	select {
	case s.ingests <- r:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-s.ctx.Done():
		return false, ErrClosed
	}
	// Once queued, the outcome is waited for even past ctx: the batch may
	// be committing it, and an error reported for a committed event would
	// only make its sender send it again (a duplicate, but a needless one).
	select {
	case <-r.done:
		return r.inserted, r.err
	case <-s.commitDone:
		// Closed: queued too late for the last drain.
		select {
		case <-r.done:
			return r.inserted, r.err
		default:
			return false, ErrClosed
		}
	}
}

func (s *Store) commitLoop() {
	batch := make([]*ingestReq, 0, maxIngestBatch)
	for {
		select {
		case r := <-s.ingests:
			batch = append(batch[:0], r)
		case <-s.ctx.Done():
			s.failQueued()
			return
		}
	gather:
		for len(batch) < maxIngestBatch {
			select {
			case r := <-s.ingests:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		s.runBatch(batch)
		clear(batch)
	}
}

// failQueued answers the ingests still queued at Close.
func (s *Store) failQueued() {
	for {
		select {
		case r := <-s.ingests:
			r.err = ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

// runBatch commits the live ingests of batch together, or one by one if
// together they fail, and answers each.
func (s *Store) runBatch(batch []*ingestReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // gave up before its turn: nothing was sent
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	var err error
	if len(live) > 1 {
		err = s.tryBatch(live)
		if s.onBatch != nil {
			s.onBatch(len(live), err)
		}
	}
	if len(live) == 1 || err != nil {
		for _, r := range live {
			r.inserted, r.err = s.ingestOne(r.ctx, r.args)
		}
	}
	for _, r := range live {
		close(r.done)
	}
}

// tryBatch runs the ingests in one transaction; on any error nothing of
// it is kept and the ingests are left unanswered, to be run one by one.
// The batch runs on the store's context, not on any one request's: one
// sender hanging up must not abort the others' commit.
func (s *Store) tryBatch(live []*ingestReq) error {
	ctx := s.ctx
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }() // a no-op after Commit
	b := &pgx.Batch{}
	for _, r := range live {
		b.Queue(sqlIngest, r.args...)
	}
	results := tx.SendBatch(ctx, b)
	inserted := make([]bool, len(live))
	for i := range live {
		var woken int64
		if err := results.QueryRow().Scan(&inserted[i], &woken); err != nil {
			_ = results.Close()
			return fmt.Errorf("ingest %d of %d: %w", i+1, len(live), err)
		}
	}
	if err := results.Close(); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		// An error from COMMIT itself may come after the commit happened
		// (a connection lost on the way back): running the ingests again
		// finds them as duplicates, which Ingest reports as stored.
		return errors.Join(errCommitUnknown, err)
	}
	for i, r := range live {
		r.inserted = inserted[i]
	}
	return nil
}

// errCommitUnknown marks a batch whose commit may or may not have
// happened.
var errCommitUnknown = errors.New("postgres: commit outcome unknown")

// ingestOne runs one ingest in its own transaction.
func (s *Store) ingestOne(ctx context.Context, args []any) (bool, error) {
	var (
		inserted bool
		woken    int64
	)
	err := s.pool.QueryRow(ctx, sqlIngest, args...).Scan(&inserted, &woken)
	return inserted, err
}
