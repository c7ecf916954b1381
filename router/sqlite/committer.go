package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

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
// The committer takes the first request, yields once so that the callers
// that are already runnable can enqueue (without the yield it wins every
// race on a busy machine and commits batches of one, see docs/performance.md),
// then drains the queue without blocking, up to MaxBatch. Only a small
// batch waits on a timer for more (gather, fill): a full one would make
// closed-loop senders each pay the window for nothing.
//
// Durability is not the same for every write. An ingest is acknowledged
// to its sender after the commit, so its commit syncs the WAL
// (synchronous=FULL) before anyone is answered. Claims and finishes are
// delivery bookkeeping: losing one to a power cut or an OS crash (a process
// crash loses nothing, the OS holds the pages) means a lease that never
// was, or a delivery sent once more with the same idempotency key, which
// at-least-once allows; never a lost event. A batch of only those commits
// with synchronous=NORMAL, which in WAL mode skips the fsync but cannot
// corrupt the file, and the next synced commit covers it: the next ingest,
// any batch once syncWindow has passed since the first unsynced commit, or
// a marker write when the committer falls idle. A power cut can so undo
// at most syncWindow of claims and finishes. Under a delivery backlog this
// is most commits, and the fsyncs they skip were a third of the CPU of
// each delivered event on the project's machine (README, Performance).
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

// syncWindow bounds how long a relaxed commit (claims and finishes only)
// may stay unsynced.
const syncWindow = 10 * time.Millisecond

// writeReq is one queued write: exactly one of ingest, finish, claim and
// probe is set.
type writeReq struct {
	ctx    context.Context
	state  atomic.Int32
	ingest *ingestOp
	finish *finishOp
	claim  *claimOp
	probe  bool // ProbeWrite: rewrite the ready_probe row
	dup    bool // result of an ingest, valid once done has delivered nil
	// storedID is, for a duplicate ingest, the id of the event it clashed
	// with. It is handed to the caller's event only after the commit: a
	// batch run again (see runBatch) must insert the event as given.
	storedID string
	done     chan error // buffered: the committer never blocks on a caller
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
	syncTimer := time.NewTimer(time.Hour)
	syncTimer.Stop()
	for {
		select {
		case r := <-s.reqs:
			reqs = append(reqs[:0], r)
			runtime.Gosched()
			reqs = s.drain(reqs)
			if outcomesOnly(reqs) {
				reqs = s.fill(reqs)
			} else if len(reqs) < gatherTarget {
				reqs = s.gather(reqs)
			}
			s.commit(reqs)
			clear(reqs)
		case <-syncTimer.C:
			s.syncMarker()
		case <-s.quit:
			for {
				reqs = s.drain(reqs[:0])
				if len(reqs) == 0 {
					break
				}
				s.commit(reqs)
				clear(reqs)
			}
			if !s.unsyncedSince.IsZero() {
				s.syncMarker()
			}
			return
		}
		// Idle or not, unsynced commits become durable within syncWindow.
		if !s.unsyncedSince.IsZero() {
			syncTimer.Reset(max(0, syncWindow-time.Since(s.unsyncedSince)))
		} else {
			syncTimer.Stop()
		}
	}
}

// syncMarker makes every earlier relaxed commit durable with one synced
// commit of its own, for when no other write comes to carry the sync. On
// failure the commits stay unsynced and the timer tries again.
func (s *Store) syncMarker() {
	if s.unsyncedSince.IsZero() {
		return
	}
	// The writer connection rests at synchronous=FULL (relaxed batches
	// restore it), so this autocommit syncs the WAL.
	if _, err := s.w.ExecContext(context.Background(), `UPDATE sync_marker SET at = ? WHERE id = 1`, time.Now().UnixNano()); err != nil {
		s.logs.Log(s.log, time.Now(), slog.LevelWarn, "sqlite-sync", "sqlite: syncing relaxed commits failed; retrying", "err", err)
		s.unsyncedSince = time.Now().Add(-syncWindow / 2)
		return
	}
	s.unsyncedSince = time.Time{}
	s.stats.syncs.Add(1)
}

// fillWait and fillTarget bound how long a batch of delivery outcomes
// alone waits for more writes before it commits.
//
// Each commit rewrites whole every page it touched (the delivery rows',
// the due index's and the attempt log's last pages) into the WAL, so a
// backlog drained by a few workers, each committing its own outcome, wrote
// about 20 KiB per delivery. No attempt waits on an outcome's write (it is
// recorded off the worker's slot), so a millisecond's wait costs no
// throughput and halves the commits. Anything else ends the wait: an
// ingest's sender and a claiming worker are waiting for their commit.
const (
	fillWait   = time.Millisecond
	fillTarget = 64
)

// outcomesOnly reports whether reqs hold outcomes alone.
func outcomesOnly(reqs []*writeReq) bool {
	for _, r := range reqs {
		if r.finish == nil {
			return false
		}
	}
	return true
}

// fill waits, at most s.fillWait, for more outcomes to join a batch of
// outcomes, and stops early at fillTarget, at any other request (taken
// into the batch with whatever else is queued), or at Close.
func (s *Store) fill(reqs []*writeReq) []*writeReq {
	t := time.NewTimer(s.fillWait)
	defer t.Stop()
	for len(reqs) < min(fillTarget, s.maxBatch) {
		select {
		case r := <-s.reqs:
			reqs = append(reqs, r)
			if r.finish == nil {
				return s.drain(reqs)
			}
		case <-t.C:
			return reqs
		case <-s.quit:
			return reqs
		}
	}
	return reqs
}

// gatherWait and gatherTarget bound how long a small batch that syncs (it
// holds an ingest) waits for more writes to share its fsync. Under an
// open-loop load of a thousand or two events a second, requests arrive
// further apart than a commit takes, so nearly every ingest paid a commit
// of its own: its fsync and a WAL frame for every page it touched, the
// largest share of the router's CPU per event. Half a millisecond on an
// acknowledgement buys batches of several. A batch that is already
// gatherTarget large (a closed loop of many senders, a burst) does not
// wait: the queue fills it while the previous commit runs.
const (
	gatherWait   = 500 * time.Microsecond
	gatherTarget = 8
)

// gather waits, at most gatherWait, for more requests to join a batch
// that syncs, and stops early at gatherTarget or at Close.
func (s *Store) gather(reqs []*writeReq) []*writeReq {
	t := time.NewTimer(gatherWait)
	defer t.Stop()
	for len(reqs) < min(gatherTarget, s.maxBatch) {
		select {
		case r := <-s.reqs:
			reqs = append(reqs, r)
		case <-t.C:
			return s.drain(reqs)
		case <-s.quit:
			return reqs
		}
	}
	return s.drain(reqs)
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
	live := s.start(reqs)
	if len(live) == 0 {
		return
	}
	relaxed := s.mayRelax(live)
	errs := make([]error, len(live))
	if err := s.runBatch(live, errs, relaxed); err != nil {
		// Each caller reports its own error; only this shows how many
		// writes one failure took down.
		s.logs.Log(s.log, time.Now(), slog.LevelWarn, "sqlite-commit", "sqlite: group commit failed", "writes", len(live), "err", err)
		s.stats.failed.Add(int64(len(live)))
		err = fmt.Errorf("group commit: %w", err)
		for _, r := range live {
			r.done <- err
		}
		return
	}

	switch {
	case !relaxed:
		s.unsyncedSince = time.Time{} // this commit synced every earlier one
	case s.unsyncedSince.IsZero():
		s.unsyncedSince = time.Now()
	}
	if relaxed {
		s.stats.relaxed.Add(1)
	}
	s.stats.batches.Add(1)
	s.stats.writes.Add(int64(len(live)))
	if n := int64(len(live)); n > s.stats.largest.Load() {
		s.stats.largest.Store(n) // only the committer writes it
	}
	for i, r := range live {
		s.countWrite(r, errs[i])
		r.done <- errs[i]
	}
}

// start marks the requests of a batch started and returns those still
// wanted, in reqs' own array. Once started, a request is no longer the
// caller's to abandon, so it is answered in any case.
func (s *Store) start(reqs []*writeReq) []*writeReq {
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
	return live
}

// mayRelax reports whether live may commit without syncing: only if
// nothing in it is acknowledged on its commit (a probe stands for an
// ingest), and the unsynced window, once open, is not yet over.
func (s *Store) mayRelax(live []*writeReq) bool {
	if !s.unsyncedSince.IsZero() && time.Since(s.unsyncedSince) >= syncWindow {
		return false
	}
	for _, r := range live {
		if r.ingest != nil || r.probe {
			return false
		}
	}
	return true
}

// countWrite counts one committed request, err being its own failure.
func (s *Store) countWrite(r *writeReq, err error) {
	switch {
	case err != nil:
		s.stats.failed.Add(1)
	case r.finish != nil:
		s.stats.finishes.Add(1)
	case r.claim != nil, r.probe:
	case r.dup:
		s.stats.duplicates.Add(1)
	default:
		s.stats.events.Add(1)
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
func (s *Store) runBatch(live []*writeReq, errs []error, relaxed bool) error {
	for {
		redo, err := s.tryBatch(live, errs, relaxed)
		if err != nil || !redo {
			return err
		}
	}
}

// tryBatch is one attempt of runBatch. It reports redo when it rolled back
// to drop a partly written request, now marked in errs.
func (s *Store) tryBatch(live []*writeReq, errs []error, relaxed bool) (redo bool, err error) {
	// One caller's cancelled context must not roll back everyone's writes.
	ctx := context.Background()
	// The batch holds the one writer connection, so that nothing else
	// runs on it while it is relaxed.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("writer connection: %w", err)
	}
	defer conn.Close()
	if relaxed {
		if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
			return false, fmt.Errorf("relax synchronous: %w", err)
		}
		defer func() {
			if _, rerr := conn.ExecContext(ctx, "PRAGMA synchronous = FULL"); rerr != nil {
				// Never hand the connection back relaxed: a new one
				// gets FULL from the DSN, and checkPragmas' promise holds.
				s.logs.Log(s.log, time.Now(), slog.LevelWarn, "sqlite-restore-sync", "sqlite: restoring synchronous=FULL failed; reopening the writer connection", "err", rerr)
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	b := &batch{s: s, tx: tx}
	for i, r := range live {
		if errs[i] != nil {
			continue // dropped by an earlier attempt
		}
		partial, opErr := b.apply(r)
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

// apply runs one request in the batch's transaction. partial reports that
// it failed after writing part of its rows, which only a rollback undoes.
func (b *batch) apply(r *writeReq) (partial bool, err error) {
	switch {
	case r.ingest != nil:
		r.dup, r.storedID, partial, err = b.ingest(r.ingest)
	case r.claim != nil:
		err = b.claim(r.claim)
	case r.probe:
		_, err = b.tx.Exec(sqlProbe, time.Now().UnixNano())
	default:
		partial, err = b.finish(r.finish)
	}
	return partial, err
}

// isConstraint reports whether err is SQLite's SQLITE_CONSTRAINT, under any
// extended code: the statement failed and was undone, the transaction
// goes on.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
