package dispatch

import (
	"context"
	"crypto/rsa"
	"errors"
	"log/slog"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/trial"

	"github.com/hookroute/hookroute/router/config"
)

// What the admin API (router/admin) asks of the router: its Engine
// interface, and nothing more.

// Now returns the router's clock.
func (r *Router) Now() time.Time { return r.now() }

// Logger returns the router's logger.
func (r *Router) Logger() *slog.Logger { return r.log }

// ResumeSink resumes a paused sink: its waiting retries fall due (see
// Store.SetSinkPaused) and its workers start at once, counting failures
// afresh.
func (r *Router) ResumeSink(sink, reason string) error {
	if err := r.setPaused(sink, false, reason); err != nil {
		return err
	}
	if p := r.pools.get(sink); p != nil {
		p.failing.Store(0)
		p.wake()
	}
	return nil
}

// Wake tells the sink's workers that deliveries may be due now (a replay,
// a new signing key), instead of at their next poll.
func (r *Router) Wake(sink string) {
	if p := r.pools.get(sink); p != nil {
		p.wake()
	}
}

// Replayed counts n replayed deliveries in the metrics.
func (r *Router) Replayed(n int) { r.metrics.replayed(n) }

// CanSeal reports whether signing keys can be kept: a master key was
// given to encrypt them at rest.
func (r *Router) CanSeal() bool { return r.keys.sealer != nil }

// SealSigningKey encrypts a new signing key of sink under the master key,
// for the store; see CanSeal.
func (r *Router) SealSigningKey(sink, keyID string, priv *rsa.PrivateKey) ([]byte, error) {
	return r.keys.sealer.seal(sink, keyID, priv)
}

// SigningKeysChanged makes the workers read sink's keys from the store
// again: one was created or deleted.
func (r *Router) SigningKeysChanged(sink string) { r.keys.invalidate(sink) }

// Trial runs an event through the running config without storing
// anything; see Runtime.Trial. Its capturing sinks and signing key come
// from the router.
func (r *Router) Trial(ctx context.Context, in trial.Input) (*trial.Result, error) {
	rt := r.rt.Load()
	return trial.Run(ctx, rt, in, trial.Options{Capture: r.capturer(), Now: r.now, SigningKey: r.trialSigningKey,
		Links: r.store.Links, CooldownHolder: r.store.CooldownHolder, WaitingTimers: r.waitingUnder,
		Silenced: func(source string, view *router.View, rule, sink string) *router.Silence {
			return r.silencedBy(rt, source, func() (*router.View, error) { return view, nil }, rule, sink)
		}})
}

// capturer returns what trials build capturing sinks with, nil if the
// router was given none.
func (r *Router) capturer() config.Capturer {
	if r.capture == nil {
		return nil
	}
	return r.capture()
}

// trialSigningKey reads a secured sink's key as the worker does (the
// keyring only reads the store).
func (r *Router) trialSigningKey(ctx context.Context, sink string) (*rsa.PrivateKey, error) {
	if r.keys == nil {
		return nil, errors.New("signing keys are not available")
	}
	_, key, err := r.keys.get(ctx, sink)
	return key, err
}

// TrialSamples lists the events a trial may start from: each source's
// embedded samples and the latest real event of each name.
func (r *Router) TrialSamples(ctx context.Context) []trial.Sample {
	return trial.Samples(ctx, r.rt.Load(), r.store, func(err error) {
		r.logs.Log(r.log, r.now(), slog.LevelWarn, "trial-samples", "trial samples", "err", err)
	})
}
