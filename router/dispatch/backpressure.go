package dispatch

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hookroute/hookroute/router"
)

// Backpressure. A receiver that answers 429 or 503 with a Retry-After is
// not failing: it is saying how fast it can take requests. Treating that
// answer as a failure spends attempts (deliveries go dead against a
// receiver that is up), counts toward pausing the sink, and leaves every
// other delivery of the sink free to hit the same window. So such an
// answer:
//   - holds the whole sink until the time it gave, for every worker on
//     every replica (Store.HoldSink);
//   - costs the delivery no attempt (Finish.Backpressure), up to
//     maxBackpressure answers per delivery, so that a receiver that never
//     stops asking to wait still ends in a dead letter;
//   - neither counts toward pause_after nor resets its count;
//   - makes the sink's sender adapt: a request rate that backs off to what
//     the receiver was accepting and creeps up again (AIMD), and a
//     concurrency window that halves on 429s and timeouts and grows by
//     one per window of successes, within 1 and the sink's concurrency.

// maxBackpressure is how many backpressure answers one delivery may get
// without spending attempts; after that each one counts as a failure.
const maxBackpressure = 100

// Adaptive sending settles back to the configured settings after
// pressureCalm without a backpressure answer or a timeout.
const pressureCalm = time.Minute

// The adaptive rate: after a backpressure answer it is set to
// pressureBackoff of the rate the receiver was accepting over the last
// second (never below half the rate in force, nor below minRate), and
// then grows by pressureGrowth of itself, at least minGrowth requests a
// second, per second of successes. Growth is slow on purpose: every time
// it overshoots, the receiver's Retry-After stops the sink for a while,
// which costs more than sending a little under its rate.
const (
	pressureBackoff = 0.9
	pressureGrowth  = 0.01
	minGrowth       = 0.25
	minRate         = 1.0
)

// acceptedWindow is the span over which accepted requests are counted, in
// acceptedBuckets buckets.
const (
	acceptedWindow  = time.Second
	acceptedBuckets = 10
)

// pressure is one sink's adaptive sending state, shared by its pool's
// attempts. The zero limiter (nil) and a window at max mean "as
// configured".
type pressure struct {
	mu        sync.Mutex
	max       int     // the sink's configured concurrency
	window    float64 // concurrency window, 1..max
	limiter   *rate.Limiter
	heldUntil time.Time // this process's own view of the hold
	lastEvent time.Time // last backpressure answer or timeout
	// accepted counts successes per bucket of acceptedWindow /
	// acceptedBuckets; stamp is the bucket index each count belongs to.
	accepted [acceptedBuckets]int
	stamp    [acceptedBuckets]int64
}

func newPressure(max int) *pressure {
	return &pressure{max: max, window: float64(max)}
}

// backpressureOf reports whether err is the far side asking to wait (a
// Retry-After on a 429, a 503 or any retryable answer, Slack's
// ratelimited), how long, and whether the wait holds the whole sink. A
// wait of hookroute's own pacing (RetryAfterError.Local) costs no attempt
// but holds nothing.
func backpressureOf(err error) (wait time.Duration, holdSink, ok bool) {
	var ra *router.RetryAfterError
	if err == nil || router.IsPermanent(err) || !errors.As(err, &ra) || ra.After <= 0 {
		return 0, false, false
	}
	return ra.After, !ra.Local, true
}

func bucketOf(t time.Time) int64 {
	return t.UnixNano() / int64(acceptedWindow/acceptedBuckets)
}

// minMeasure is the least sending time a rate is measured over: less
// says more about chance than about the receiver.
const minMeasure = acceptedWindow / 4

// acceptedRate is the rate of requests accepted over the last
// acceptedWindow, or since the last hold ended if that is later: a hold
// is time the receiver was not asked, not time it refused. ok is false
// when that leaves less than minMeasure. Callers hold mu.
func (p *pressure) acceptedRate(now time.Time) (perSecond float64, ok bool) {
	from := now.Add(-acceptedWindow)
	if p.heldUntil.After(from) {
		from = p.heldUntil
	}
	span := now.Sub(from)
	if span < minMeasure {
		return 0, false
	}
	cur, first, n := bucketOf(now), bucketOf(from), 0
	for i := range p.accepted {
		if b := p.stamp[i]; b >= first && cur-b < acceptedBuckets {
			n += p.accepted[i]
		}
	}
	return float64(n) / span.Seconds(), true
}

// succeeded records an accepted request.
func (p *pressure) succeeded(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := bucketOf(now)
	i := int(b % acceptedBuckets)
	if p.stamp[i] != b {
		p.stamp[i], p.accepted[i] = b, 0
	}
	p.accepted[i]++
	if p.window < float64(p.max) {
		p.window = min(p.window+1/p.window, float64(p.max))
	}
	if p.limiter != nil {
		l := float64(p.limiter.Limit())
		p.limiter.SetLimitAt(now, rate.Limit(l+max(l*pressureGrowth, minGrowth)/l))
	}
}

// pushedBack records a backpressure answer received at now that asked for
// wait. It returns the end of the sink's hold. The rate and the window are
// cut once per hold: the answers of requests already in flight when the
// first came say nothing new.
func (p *pressure) pushedBack(now time.Time, wait time.Duration, hold bool) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !hold {
		return p.heldUntil // our own pacing: the receiver said nothing
	}
	if now.After(p.heldUntil) {
		p.cut(now)
	}
	p.heldUntil = maxTime(p.heldUntil, now.Add(wait))
	return p.heldUntil
}

// timedOut records an attempt that ran out of time: too many requests in
// flight for the receiver, so the window halves.
func (p *pressure) timedOut(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.window = max(1, p.window/2)
	p.lastEvent = now
}

// tooMany records a 429 without a Retry-After: a cut, but no hold.
func (p *pressure) tooMany(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.lastEvent) >= acceptedWindow {
		p.cut(now)
	}
}

// cut is the multiplicative decrease. Callers hold mu.
func (p *pressure) cut(now time.Time) {
	p.lastEvent = now
	p.window = max(1, p.window/2)
	accepted, measured := p.acceptedRate(now)
	limit := accepted * pressureBackoff
	if p.limiter != nil {
		in := float64(p.limiter.Limit())
		if !measured {
			limit = in * pressureBackoff
		}
		limit = max(limit, in/2)
	}
	limit = max(limit, minRate)
	if p.limiter == nil {
		p.limiter = rate.NewLimiter(rate.Limit(limit), 1)
		return
	}
	p.limiter.SetLimitAt(now, rate.Limit(limit))
}

// settle returns to the configured settings once the sink has been calm
// for pressureCalm, and reports whether adaptive sending is still on.
func (p *pressure) settle(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limiter == nil && p.window >= float64(p.max) {
		return false
	}
	if now.Sub(p.lastEvent) >= pressureCalm {
		p.limiter, p.window = nil, float64(p.max)
		return false
	}
	return true
}

// admits reports whether one more attempt may start with inFlight already
// running.
func (p *pressure) admits(inFlight int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return inFlight < int(math.Floor(p.window))
}

// wait waits for the adaptive rate's next token, if it is on.
func (p *pressure) wait(ctx context.Context) error {
	p.mu.Lock()
	l := p.limiter
	p.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Wait(ctx)
}

// held returns this process's view of the sink's hold.
func (p *pressure) held() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heldUntil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// observe feeds an attempt's outcome to the sink's adaptive sending and
// returns the backpressure it carried, if any: how long to wait, and
// whether the store's hold must be set.
func (p *pressure) observe(now time.Time, res router.Result, err error) (wait time.Duration, hold, backpressure bool) {
	if err == nil {
		p.succeeded(now)
		return 0, false, false
	}
	if wait, hold, ok := backpressureOf(err); ok {
		p.pushedBack(now, wait, hold)
		return wait, hold, true
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		p.timedOut(now)
	case res.StatusCode == http.StatusTooManyRequests:
		p.tooMany(now)
	}
	return 0, false, false
}
