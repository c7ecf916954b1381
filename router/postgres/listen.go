package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen's timing.
const (
	// retryMin and retryMax bound the wait between connection attempts,
	// which doubles from one to the next while they fail.
	retryMin = time.Second
	retryMax = 30 * time.Second
	// idleCheck is how long the connection may stay silent before it is
	// pinged: a server that vanished without closing the socket is
	// otherwise noticed only by TCP keepalives, minutes later.
	idleCheck = 30 * time.Second
	// setupTimeout bounds connecting, LISTEN, the catch-up query and each
	// ping, so that a black-holed server cannot stall the loop.
	setupTimeout = 10 * time.Second
)

// sqlPendingSinks finds the sinks a listener may have missed notifications
// for. It reads deliveries_due, which holds pending rows only.
const sqlPendingSinks = `SELECT DISTINCT sink FROM deliveries WHERE status = 'pending'`

// Listen implements router.Notifier: it calls wake with a sink's name each
// time any replica (this one included) ingests deliveries for that sink, so
// that idle workers everywhere claim at once rather than at their next poll.
//
// It holds a connection of its own, outside the pool and its MaxConns, on
// which it LISTENs on Options.Channel. Notifications are not queued for a
// listener that is not connected, so each time Listen (re)connects it also
// calls wake for every sink that has pending deliveries: none is missed,
// and a few are woken for nothing. wake runs on Listen's goroutine and must
// not block (a non-blocking channel send is typical); while it runs,
// notifications wait in the connection's buffers.
//
// When the connection fails or is lost (a server restart, a failover,
// pg_terminate_backend), Listen connects again after a wait that starts at
// one second and doubles up to 30 seconds while attempts fail. It logs a
// warning when notifications stop and a message when they resume, not
// every attempt in between.
//
// Listen returns ctx.Err() once ctx is done, or ErrClosed once the store is
// closed; it returns nothing else. Several Listen calls may run at once,
// each with its own connection.
func (s *Store) Listen(ctx context.Context, wake func(sink string)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.listeners.Add(1) // under mu, so that Close's Wait cannot miss it
	s.mu.Unlock()
	defer s.listeners.Done()

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	var (
		delay   = retryMin
		failing bool // a failure was logged, and no success since
		log     = s.log.With("channel", s.channel)
	)
	for {
		err := s.listen(ctx, wake, func(pid uint32) {
			delay = retryMin
			if failing {
				log.Info("postgres: listening again for wake-ups", "pid", pid)
				failing = false
			} else {
				log.Debug("postgres: listening for wake-ups", "pid", pid)
			}
			if s.onListen != nil {
				s.onListen(pid)
			}
		})
		if ctx.Err() != nil {
			if err := parent.Err(); err != nil {
				return err
			}
			return ErrClosed
		}
		if !failing {
			log.Warn("postgres: wake-ups from other replicas stopped; reconnecting (workers poll meanwhile)", "err", err)
			failing = true
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		delay = min(2*delay, retryMax)
	}
}

// listen runs one connection: it connects, listens, catches up, calls
// listening (after the catch-up, so that a test can tell the wake-ups
// of notifications from those of the catch-up), then passes notifications to wake until the connection fails
// or ctx ends. It always returns an error.
func (s *Store) listen(ctx context.Context, wake func(string), listening func(pid uint32)) error {
	cfg := s.pool.Config().ConnConfig // a copy: search_path and all
	setup, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(setup, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Close says goodbye to the server, which must not hang on a dead
		// socket either.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(c)
	}()

	// LISTEN before the catch-up query: a delivery committed in between is
	// then seen by both, rather than by neither.
	if _, err := conn.Exec(setup, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	rows, err := conn.Query(setup, sqlPendingSinks)
	if err != nil {
		return fmt.Errorf("pending sinks: %w", err)
	}
	sinks, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pending sinks: %w", err)
	}
	for _, sink := range sinks {
		wake(sink)
	}
	listening(conn.PgConn().PID())

	for {
		wait, cancel := context.WithTimeout(ctx, idleCheck)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			wake(n.Payload)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("wait: %w", err)
		}
		// The wait timed out, which leaves the connection usable (pgx
		// interrupts the read with a deadline, and resets it).
		ping, cancel := context.WithTimeout(ctx, setupTimeout)
		err = conn.Ping(ping)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
}
