package router

import (
	"log/slog"
	"sync"
	"time"
)

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
	log.Log(nil, level, msg, args...)
}
