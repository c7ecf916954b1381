package router

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logBurst and logInterval are the limiter's budget per key (README,
// Logs): a failure that repeats shows its first lines in full, then one a
// second with the count of those suppressed.
const (
	logBurst    = 10
	logInterval = time.Second
)

// LogLimiter applies the router's rule for repeated failures to the log
// lines of other packages: the SQLite store's committer fails every batch
// while the disk is full. It is safe for concurrent use.
type LogLimiter struct{ l *logLimiter }

// NewLogLimiter returns a limiter with the router's budget per key.
func NewLogLimiter() *LogLimiter { return &LogLimiter{l: newLogLimiter(logBurst, logInterval)} }

// Log writes the line to log unless key has used its budget. A key names
// a kind of failure, never a request or a delivery: its budget is shared
// by every occurrence.
func (l *LogLimiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	l.l.log(log, time.Now(), level, key, msg, args...)
}

// logLimiter keeps a repeated failure (a store outage seen by every
// request) from flooding the log: per key, the first burst lines pass, then
// one per interval, which carries the number of lines suppressed since.
type logLimiter struct {
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

func newLogLimiter(burst int, interval time.Duration) *logLimiter {
	return &logLimiter{burst: burst, interval: interval, keys: map[string]*logKey{}}
}

// log writes the line unless key has used its budget; now is the clock.
func (l *logLimiter) log(log *slog.Logger, now time.Time, level slog.Level, key, msg string, args ...any) {
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
