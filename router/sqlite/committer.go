package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/hookroute/hookroute/router"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Group commit.
//
// With synchronous=FULL every commit costs an fsync (≈ 0.1 ms alone, several
// ms when neighbours are busy), so one transaction per event caps ingest at
// a few thousand per second. Ingest and Finish therefore hand their writes
// to one goroutine, the committer, which applies everything queued in one
// transaction and answers every caller after the single commit.
//
// The committer never waits on a timer: closed-loop senders would each pay
// the window. It takes the first request, yields once so that the callers
// that are already runnable can enqueue (without the yield it wins every
// race on a busy machine and commits batches of one, see performance.md),
// then drains the queue without blocking, up to MaxBatch.
//
// A write that fails on its own (a delivery id used twice, a lost lease)
// fails alone, and its neighbours still commit (see runBatch). If the
// transaction itself fails, every caller in the batch gets the error:
// nothing is acknowledged that was not committed.

// Request states. A caller may abandon a request only while it is queued;
// once the committer has started it, the caller waits for the result.
const (
	reqQueued int32 = iota
	reqStarted
	reqAbandoned
)

// writeReq is one queued write: exactly one of ingest and finish is set.
type writeReq struct {
	ctx    context.Context
	state  atomic.Int32
	ingest *ingestOp
	finish *finishOp
	claim  *claimOp
	dup    bool       // result of an ingest, valid once done has delivered nil
	done   chan error // buffered: the committer never blocks on a caller
}

// batch is one group transaction and its statements, bound on first use.
type batch struct {
	s              *Store
	tx             *sql.Tx
	insertEvent    *sql.Stmt
	insertDelivery *sql.Stmt
	finishDelivery *sql.Stmt
	insertAttempt  *sql.Stmt
	claimStmt      *sql.Stmt
	claimEventStmt *sql.Stmt
}

// stmt binds the writer's prepared statement to the batch's transaction.
// database/sql reuses the statement already prepared on the one writer
// connection, so this costs an allocation, not a prepare.
func (b *batch) stmt(bound **sql.Stmt, prepared *sql.Stmt) *sql.Stmt {
	if *bound == nil {
		*bound = b.tx.Stmt(prepared)
	}
	return *bound
}

// submit queues r and waits for its result. It returns without writing
// anything if ctx ends, or the store closes, before r's batch starts.
func (s *Store) submit(ctx context.Context, r *writeReq) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	r.done = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err()
		}
		// The batch has started: the write may commit, so the caller must
		// learn whether it did.
		return <-r.done
	case <-s.done:
		// The committer answers before it stops; a request still queued
		// now lost the race against Close and was never started.
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// commitLoop is the committer goroutine. It stops, after committing what is
// queued, when Close closes s.quit.
func (s *Store) commitLoop() {
	defer close(s.done)
	reqs := make([]*writeReq, 0, s.maxBatch)
	for {
		select {
		case r := <-s.reqs:
			reqs = append(reqs[:0], r)
			runtime.Gosched()
			reqs = s.drain(reqs)
			s.commit(reqs)
			clear(reqs)
		case <-s.quit:
			for {
				reqs = s.drain(reqs[:0])
				if len(reqs) == 0 {
					return
				}
				s.commit(reqs)
				clear(reqs)
			}
		}
	}
}

// drain appends queued requests to reqs without blocking, up to MaxBatch.
func (s *Store) drain(reqs []*writeReq) []*writeReq {
	for len(reqs) < s.maxBatch {
		select {
		case r := <-s.reqs:
			reqs = append(reqs, r)
		default:
			return reqs
		}
	}
	return reqs
}

// commit runs one batch and answers its callers.
func (s *Store) commit(reqs []*writeReq) {
	live := reqs[:0]
	for _, r := range reqs {
		if !r.state.CompareAndSwap(reqQueued, reqStarted) {
			continue // abandoned: its caller has already returned
		}
		if err := r.ctx.Err(); err != nil {
			s.stats.failed.Add(1)
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}

	errs := make([]error, len(live))
	if err := s.runBatch(live, errs); err != nil {
		// Each caller reports its own error; only this shows how many
		// writes one failure took down.
		s.log.Warn("sqlite: group commit failed", "writes", len(live), "err", err)
		s.stats.failed.Add(int64(len(live)))
		err = fmt.Errorf("group commit: %w", err)
		for _, r := range live {
			r.done <- err
		}
		return
	}

	s.stats.batches.Add(1)
	s.stats.writes.Add(int64(len(live)))
	if n := int64(len(live)); n > s.stats.largest.Load() {
		s.stats.largest.Store(n) // only the committer writes it
	}
	for i, r := range live {
		switch {
		case errs[i] != nil:
			s.stats.failed.Add(1)
		case r.finish != nil:
			s.stats.finishes.Add(1)
		case r.claim != nil:
		case r.dup:
			s.stats.duplicates.Add(1)
		default:
			s.stats.events.Add(1)
		}
		r.done <- errs[i]
	}
}

// runBatch applies live in one transaction and commits. A write's own
// failure goes to errs; an error returned means nothing committed.
//
// A write that fails on a constraint (a delivery id used twice) is the
// caller's problem, not its neighbours'. If it failed before writing
// anything it is just left out; if part of it was written, the transaction
// is rolled back and run again without it. That costs nothing while writes
// succeed, unlike a savepoint per write, which journals every page each
// write touches. Any other error (I/O, disk full) fails the whole batch.
func (s *Store) runBatch(live []*writeReq, errs []error) error {
	for {
		redo, err := s.tryBatch(live, errs)
		if err != nil || !redo {
			return err
		}
	}
}

// tryBatch is one attempt of runBatch. It reports redo when it rolled back
// to drop a partly written request, now marked in errs.
func (s *Store) tryBatch(live []*writeReq, errs []error) (redo bool, err error) {
	// One caller's cancelled context must not roll back everyone's writes.
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	b := &batch{s: s, tx: tx}
	for i, r := range live {
		if errs[i] != nil {
			continue // dropped by an earlier attempt
		}
		var (
			opErr   error
			partial bool
		)
		switch {
		case r.ingest != nil:
			r.dup, partial, opErr = b.ingest(r.ingest)
		case r.claim != nil:
			opErr = b.claim(r.claim)
		default:
			partial, opErr = b.finish(r.finish)
		}
		if opErr == nil {
			continue
		}
		if !errors.Is(opErr, router.ErrLeaseLost) && !isConstraint(opErr) {
			tx.Rollback()
			return false, opErr
		}
		errs[i] = opErr
		if partial {
			if err := tx.Rollback(); err != nil {
				return false, fmt.Errorf("rollback: %w", err)
			}
			return true, nil
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return false, nil
}

// isConstraint reports whether err is SQLite's SQLITE_CONSTRAINT, under any
// extended code: the statement failed and was undone, the transaction
// goes on.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
