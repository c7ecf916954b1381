package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
)

// limit returns the adaptive rate in force (0: none) and the window.
func (p *pressure) limit() (float64, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limiter == nil {
		return 0, p.window
	}
	return float64(p.limiter.Limit()), p.window
}

var tBP = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

func tooManyRequests(after time.Duration) error {
	return &router.RetryAfterError{Err: errors.New("429 Too Many Requests"), After: after}
}

// TestPressureCutsToWhatWasAccepted: the first backpressure answer sets the
// rate to 0.9 of what the receiver accepted over the last second and halves
// the window; answers to requests already in flight during the hold change
// nothing; the rate then grows with successes; a calm minute ends it all.
func TestPressureCutsToWhatWasAccepted(t *testing.T) {
	p := newPressure(8)
	if p.settle(tBP) {
		t.Fatal("adaptive sending on before any pushback")
	}
	// 40 accepted over the last second, then a 429 with Retry-After: 3.
	for i := range 40 {
		p.observe(tBP.Add(time.Duration(i)*20*time.Millisecond), router.Result{StatusCode: 200}, nil)
	}
	now := tBP.Add(800 * time.Millisecond)
	wait, hold, ok := p.observe(now, router.Result{StatusCode: 429}, tooManyRequests(3*time.Second))
	if !ok || !hold || wait != 3*time.Second {
		t.Fatalf("observe(429, Retry-After 3s) = %v, %v, %v; want 3s, hold, backpressure", wait, hold, ok)
	}
	if got := p.held(); !got.Equal(now.Add(3 * time.Second)) {
		t.Errorf("held until %v, want %v", got, now.Add(3*time.Second))
	}
	limit, window := p.limit()
	if math.Abs(limit-36) > 0.01 || window != 4 {
		t.Errorf("after the cut: rate %.2f/s, window %v; want 36/s (0.9 × 40 accepted), 4", limit, window)
	}
	// Two more answers from requests that were in flight: no further cut,
	// but the hold may only move later.
	p.observe(now.Add(5*time.Millisecond), router.Result{StatusCode: 429}, tooManyRequests(time.Second))
	p.observe(now.Add(10*time.Millisecond), router.Result{StatusCode: 429}, tooManyRequests(3*time.Second))
	if limit2, window2 := p.limit(); limit2 != limit || window2 != window {
		t.Errorf("answers within the hold cut again: %.2f/s, window %v", limit2, window2)
	}
	if got := p.held(); !got.Equal(now.Add(3*time.Second + 10*time.Millisecond)) {
		t.Errorf("held until %v, want the latest answer's end", got)
	}
	// A second of successes at the rate grows it by about 1 %.
	after := now.Add(4 * time.Second)
	for i := range 36 {
		p.observe(after.Add(time.Duration(i)*27*time.Millisecond), router.Result{StatusCode: 200}, nil)
	}
	if limit3, window3 := p.limit(); limit3 < 36.3 || limit3 > 36.4 || window3 < 8 {
		t.Errorf("after a second of successes: %.2f/s, window %v; want about 36.36/s and the window back at 8", limit3, window3)
	}
	// The next window's first answer cuts again, to what went through.
	next := after.Add(950 * time.Millisecond)
	p.observe(next, router.Result{StatusCode: 429}, tooManyRequests(time.Second))
	if l, _ := p.limit(); math.Abs(l-0.9*36) > 1 {
		t.Errorf("second cut: %.2f/s, want about %.1f", l, 0.9*36)
	}
	if !p.settle(next.Add(pressureCalm - time.Second)) {
		t.Error("adaptive sending ended before a calm minute")
	}
	if p.settle(next.Add(pressureCalm)) {
		t.Error("adaptive sending still on after a calm minute")
	}
	if l, w := p.limit(); l != 0 || w != 8 {
		t.Errorf("after settling: %.2f/s, window %v; want none, 8", l, w)
	}
}

// TestPressureMeasuresSinceTheHold: the rate a receiver accepted is
// measured over the time it was asked, not over its own hold; too soon
// after a hold there is nothing to measure, and the cut is a plain 0.9.
func TestPressureMeasuresSinceTheHold(t *testing.T) {
	p := newPressure(4)
	for i := range 40 {
		p.observe(tBP.Add(time.Duration(i)*25*time.Millisecond), router.Result{StatusCode: 200}, nil)
	}
	p.observe(tBP.Add(time.Second), router.Result{StatusCode: 429}, tooManyRequests(3*time.Second)) // 36/s, held to +4s
	end := tBP.Add(4 * time.Second)
	for i := range 18 {
		p.observe(end.Add(time.Duration(i)*27*time.Millisecond), router.Result{StatusCode: 200}, nil)
	}
	p.observe(end.Add(500*time.Millisecond), router.Result{StatusCode: 429}, tooManyRequests(time.Second))
	if l, _ := p.limit(); math.Abs(l-0.9*36) > 0.5 {
		t.Errorf("cut half a second after a hold: %.2f/s, want about %.1f (0.9 × 18 accepted in 0.5 s)", l, 0.9*36)
	}
	before, _ := p.limit()
	again := end.Add(1500 * time.Millisecond) // the second hold ended at +1.5 s
	p.observe(again.Add(50*time.Millisecond), router.Result{StatusCode: 429}, tooManyRequests(time.Second))
	if l, _ := p.limit(); math.Abs(l-0.9*before) > 0.01 {
		t.Errorf("cut 50 ms after a hold: %.2f/s, want 0.9 × %.2f", l, before)
	}
}

// TestPressureFloorsAndOtherSignals: a rate never drops below half the rate
// in force or below one a second; a timeout halves the window without a
// hold; a 429 without Retry-After cuts but holds nothing; our own pacing
// (Local) holds and cuts nothing; errors that are no backpressure are not.
func TestPressureFloorsAndOtherSignals(t *testing.T) {
	p := newPressure(4)
	p.observe(tBP, router.Result{StatusCode: 429}, tooManyRequests(time.Second))
	if l, _ := p.limit(); l != minRate {
		t.Errorf("cut with nothing accepted: %.2f/s, want the floor %v", l, minRate)
	}

	p = newPressure(4)
	for i := range 100 {
		p.observe(tBP.Add(time.Duration(i)*10*time.Millisecond), router.Result{StatusCode: 200}, nil)
	}
	p.observe(tBP.Add(990*time.Millisecond), router.Result{StatusCode: 429}, tooManyRequests(time.Second))
	p.observe(tBP.Add(10*time.Second), router.Result{StatusCode: 429}, tooManyRequests(time.Second))
	if l, _ := p.limit(); math.Abs(l-45) > 0.5 {
		t.Errorf("second cut with little accepted since: %.2f/s, want half of 90", l)
	}

	p = newPressure(8)
	if _, hold, ok := p.observe(tBP, router.Result{}, fmt.Errorf("post: %w", context.DeadlineExceeded)); ok || hold {
		t.Error("a timeout taken for backpressure")
	}
	if l, w := p.limit(); l != 0 || w != 4 || !p.held().IsZero() {
		t.Errorf("after a timeout: %.2f/s, window %v, held %v; want no rate, 4, no hold", l, w, p.held())
	}
	if !p.admits(3) || p.admits(4) {
		t.Error("a window of 4 must admit a fourth attempt and not a fifth")
	}

	p = newPressure(8)
	if _, hold, ok := p.observe(tBP, router.Result{StatusCode: 429}, errors.New("429 Too Many Requests")); ok || hold {
		t.Error("a 429 without Retry-After taken for backpressure (it spends an attempt)")
	}
	if l, w := p.limit(); l != minRate || w != 4 || !p.held().IsZero() {
		t.Errorf("after a bare 429: %.2f/s, window %v, held %v; want a cut and no hold", l, w, p.held())
	}

	p = newPressure(8)
	wait, hold, ok := p.observe(tBP, router.Result{}, &router.RetryAfterError{Err: errors.New("channel busy"), After: time.Second, Local: true})
	if !ok || hold || wait != time.Second {
		t.Errorf("local pacing: %v, %v, %v; want a free wait that holds nothing", wait, hold, ok)
	}
	if l, w := p.limit(); l != 0 || w != 8 || !p.held().IsZero() {
		t.Errorf("after local pacing: %.2f/s, window %v, held %v; want nothing changed", l, w, p.held())
	}
	for _, err := range []error{router.Permanent(tooManyRequests(time.Second)), errors.New("503"), nil} {
		if _, _, ok := backpressureOf(err); ok {
			t.Errorf("backpressureOf(%v) = true", err)
		}
	}
}

// TestNextStep is the retry policy, case by case.
func TestNextStep(t *testing.T) {
	sr := &rules.SinkRuntime{Retry: config.RetryConfig{MaxAttempts: 3, Initial: config.Duration(time.Second), MaxInterval: config.Duration(time.Second), Multiplier: 2}, PauseProbe: time.Minute}
	end := tBP.Add(time.Second)
	ra := tooManyRequests(30 * time.Second)
	for _, tc := range []struct {
		name       string
		attempts   int
		throttled  int
		err        error
		paused     bool
		pushedBack bool
		status     string
		bp         bool
		next       time.Time
		notBefore  time.Time
	}{
		{name: "delivered", status: router.StatusDelivered},
		{name: "retry", err: errors.New("503"), status: router.StatusPending, next: end.Add(time.Second)},
		{name: "last attempt", attempts: 2, err: errors.New("503"), status: router.StatusDead},
		{name: "permanent", err: router.Permanent(errors.New("400")), status: router.StatusDead},
		{name: "paused", attempts: 2, err: errors.New("503"), paused: true, status: router.StatusPending, next: end.Add(time.Minute)},
		{name: "backpressure", attempts: 2, err: ra, pushedBack: true, status: router.StatusPending, bp: true,
			next: end.Add(30 * time.Second), notBefore: end.Add(30 * time.Second)},
		{name: "backpressure past the cap", attempts: 2, throttled: maxBackpressure, err: ra, pushedBack: true, status: router.StatusDead},
		{name: "backpressure past the cap, attempts left", throttled: maxBackpressure, err: ra, pushedBack: true, status: router.StatusPending,
			next: end.Add(30 * time.Second), notBefore: end.Add(30 * time.Second)},
	} {
		c := &router.Claimed{Attempts: tc.attempts, Throttled: tc.throttled}
		f := nextStep(sr, c, tBP, end, tc.err, tc.paused, tc.pushedBack, router.RetryAfterOf(tc.err))
		if f.Status != tc.status || f.Backpressure != tc.bp || !f.NextAttemptAt.Equal(tc.next) || !f.NotBefore.Equal(tc.notBefore) {
			t.Errorf("%s: %s, backpressure %v, next %v, floor %v; want %s, %v, %v, %v", tc.name,
				f.Status, f.Backpressure, f.NextAttemptAt, f.NotBefore, tc.status, tc.bp, tc.next, tc.notBefore)
		}
		if f.Attempt.Duration != time.Second {
			t.Errorf("%s: duration %v", tc.name, f.Attempt.Duration)
		}
	}
}
