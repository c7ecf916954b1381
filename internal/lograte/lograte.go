// Package lograte keeps a repeated failure (a store outage seen by every
// request, a sink failing every delivery) from flooding the log: per key,
// the first lines pass, then one per interval, which carries the number of
// lines suppressed since.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Burst and Interval are the router's budget per key (README, Logs): a
// failure that repeats shows its first lines in full, then one a second
// with the count of those suppressed.
const (
	Burst    = 10
	Interval = time.Second
)

// Limiter applies a budget per key. A key names a kind of failure, never a
// request or a delivery: its budget is shared by every occurrence. It is
// safe for concurrent use.
type Limiter struct {
	burst    int
	interval time.Duration

	mu   sync.Mutex
	keys map[string]*logKey
}

type logKey struct {
	seen       int
	last       time.Time
	suppressed int
}

// New returns a limiter that lets burst lines of a key through, then one
// per interval.
func New(burst int, interval time.Duration) *Limiter {
	return &Limiter{burst: burst, interval: interval, keys: map[string]*logKey{}}
}

// NewDefault returns a limiter with the router's budget, Burst and
// Interval.
func NewDefault() *Limiter { return New(Burst, Interval) }

// Log writes the line unless key has used its budget; now is the clock.
func (l *Limiter) Log(log *slog.Logger, now time.Time, level slog.Level, key, msg string, args ...any) {
	l.mu.Lock()
	k := l.keys[key]
	if k == nil {
		if len(l.keys) > 10000 { // keys come from config names; bound them anyway
			clear(l.keys)
		}
		k = &logKey{}
		l.keys[key] = k
	}
	k.seen++
	if k.seen > l.burst && now.Sub(k.last) < l.interval {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	k.last = now
	if k.suppressed > 0 {
		args = append(args, "suppressed", k.suppressed)
		k.suppressed = 0
	}
	l.mu.Unlock()
	log.Log(context.Background(), level, msg, args...)
}
