package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hookroute/hookroute/internal/randomid"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// silenceRefresh is how stale the workers' copy of the silences may be: a
// silence made on another replica applies here within it (one made here,
// at once).
const silenceRefresh = 2 * time.Second

// Limits of a silence as the API takes it.
const (
	maxMatcher        = 2000
	maxSilenceComment = 1000
	maxSilenceLength  = 366 * 24 * time.Hour
)

// silences is the workers' copy of the store's silences, compiled for the
// running config.
type silences struct {
	mu   sync.Mutex
	rt   *rules.Runtime // compiled for
	read time.Time      // zero: read again
	list []compiledSilence
	// refreshing is set while one worker reads the store; the others use
	// the copy they have meanwhile, rather than wait on a slow store.
	refreshing bool
	// gen counts invalidations, so that a read begun before a change
	// here is not taken for one made after it.
	gen int
}

type compiledSilence struct {
	s *router.Silence
	m *rules.Matcher // nil: it does not compile for this config
}

// invalidate makes the next look read the store again.
func (ss *silences) invalidate() {
	ss.mu.Lock()
	ss.read = time.Time{}
	ss.gen++
	ss.mu.Unlock()
}

// currentSilences returns the silences, read again when stale or compiled
// for another config. A store that cannot be read keeps the last copy.
// Matchers already compiled for rt are kept: a silence never changes but
// to end.
func (r *Router) currentSilences(rt *rules.Runtime) []compiledSilence {
	ss := &r.silences
	ss.mu.Lock()
	now := time.Now()
	if ss.rt == rt && (ss.refreshing || !ss.read.IsZero() && now.Sub(ss.read) < silenceRefresh) {
		defer ss.mu.Unlock()
		return ss.list
	}
	ss.refreshing = true
	prev, prevRT, gen := ss.list, ss.rt, ss.gen
	ss.mu.Unlock()

	list := r.readSilences(rt, prev, prevRT)

	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.refreshing = false
	if list == nil {
		return ss.list // unread: the last copy, read again next time
	}
	ss.list, ss.rt, ss.read = list, rt, now
	if ss.gen != gen {
		ss.read = time.Time{} // changed here while this read ran
	}
	return ss.list
}

// readSilences reads the store's silences and compiles them for rt,
// reusing prev's matchers when prev was compiled for rt; nil when the
// store cannot be read.
func (r *Router) readSilences(rt *rules.Runtime, prev []compiledSilence, prevRT *rules.Runtime) []compiledSilence {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stored, err := r.store.Silences(ctx)
	if err != nil {
		r.logs.Log(r.log, r.now(), slog.LevelError, "silences", "silences: read", "err", err)
		return nil
	}
	known := map[string]*rules.Matcher{}
	if prevRT == rt {
		for _, cs := range prev {
			known[cs.s.ID] = cs.m
		}
	}
	list := make([]compiledSilence, 0, len(stored))
	for _, s := range stored {
		m, ok := known[s.ID]
		if !ok {
			if m, err = rt.CompileMatcher(s.Matcher); err != nil {
				// Compiled at creation; a reload since may have taken
				// away what it names. It silences nothing until the
				// config does.
				r.logs.Log(r.log, r.now(), slog.LevelWarn, "silence:"+s.ID, "silence does not compile for the running config", "silence", s.ID, "err", err)
			}
		}
		list = append(list, compiledSilence{s: s, m: m})
	}
	return list
}

// silencedBy returns the active silence that selects the delivery of the
// event to sink by rule, nil if none. view is called only when a silence
// is in force: most deliveries never need the decoded view (an http
// sink's default body is written straight from the stored one).
func (r *Router) silencedBy(rt *rules.Runtime, source string, view func() (*router.View, error), rule, sink string) *router.Silence {
	now := r.now()
	var v *router.View
	for _, cs := range r.currentSilences(rt) {
		if cs.m == nil || cs.s.State(now) != router.SilenceActive {
			continue
		}
		if v == nil {
			var err error
			if v, err = view(); err != nil {
				return nil // the render fails, and says why
			}
		}
		ok, err := cs.m.Match(source, v, rule, sink)
		if err != nil {
			r.logs.Log(r.log, now, slog.LevelWarn, "silence-run:"+cs.s.ID, "silence matcher failed on an event; it does not silence it", "silence", cs.s.ID, "err", err)
			continue
		}
		if ok {
			return cs.s
		}
	}
	return nil
}

// silenceNote is what a silenced delivery's log says.
func silenceNote(s *router.Silence) string {
	note := "silenced by " + s.ID + " (until " + s.EndsAt.UTC().Format("2006-01-02 15:04 UTC")
	if s.Comment != "" {
		note += ", " + strings.TrimSpace(runes.Truncate(fmt.Sprintf("%q", s.Comment), 200))
	}
	return note + ")"
}

// SilenceInput is a silence as the API and the CLI give it: a matcher,
// when it starts (zero: now) and ends (EndsAt, or StartsAt+Duration), and
// why.
type SilenceInput struct {
	Matcher  string
	StartsAt time.Time
	EndsAt   time.Time
	Duration time.Duration
	Comment  string
}

// SilenceError is a silence the API refuses (a 400): a matcher that does
// not compile, a bad time.
type SilenceError struct{ Msg string }

func (e *SilenceError) Error() string { return e.Msg }

// CreateSilence checks in, compiles its matcher against the running
// config, and records it as made by by. It applies here at once, and on
// other replicas within silenceRefresh.
func (r *Router) CreateSilence(ctx context.Context, in SilenceInput, by string) (*router.Silence, error) {
	now := r.now()
	switch {
	case strings.TrimSpace(in.Matcher) == "":
		return nil, &SilenceError{"matcher: must be set (an expr expression over the event, rule and sink, e.g. sink == \"support-slack\")"}
	case len(in.Matcher) > maxMatcher:
		return nil, &SilenceError{fmt.Sprintf("matcher: longer than %d bytes", maxMatcher)}
	case len(in.Comment) > maxSilenceComment:
		return nil, &SilenceError{fmt.Sprintf("comment: longer than %d bytes", maxSilenceComment)}
	case !in.EndsAt.IsZero() && in.Duration != 0:
		return nil, &SilenceError{"give ends_at or duration, not both"}
	case in.EndsAt.IsZero() && in.Duration <= 0:
		return nil, &SilenceError{"ends_at or a positive duration must be set: a silence ends"}
	}
	start := in.StartsAt
	if start.IsZero() {
		start = now
	}
	end := in.EndsAt
	if end.IsZero() {
		end = start.Add(in.Duration)
	}
	switch {
	case !end.After(now):
		return nil, &SilenceError{"ends_at is in the past: the silence would never apply"}
	case !end.After(start):
		return nil, &SilenceError{"ends_at must be after starts_at"}
	case end.Sub(start) > maxSilenceLength:
		return nil, &SilenceError{"a silence lasts at most 366 days"}
	}
	if _, err := r.rt.Load().CompileMatcher(in.Matcher); err != nil {
		var me *rules.MatcherError
		if errors.As(err, &me) {
			return nil, &SilenceError{"matcher: " + me.Error()}
		}
		return nil, err
	}
	s := &router.Silence{ID: "s_" + randomid.New(12), Matcher: in.Matcher, Comment: in.Comment, CreatedBy: by,
		CreatedAt: now.UTC(), StartsAt: start.UTC(), EndsAt: end.UTC()}
	if err := r.store.CreateSilence(ctx, s); err != nil {
		return nil, err
	}
	r.silences.invalidate()
	r.log.Info("silence created", "silence", s.ID, "by", by, "starts_at", s.StartsAt, "ends_at", s.EndsAt)
	return s, nil
}

// ExpireSilence ends a silence now.
func (r *Router) ExpireSilence(ctx context.Context, id, by string) error {
	if err := r.store.ExpireSilence(ctx, id, r.now()); err != nil {
		return err
	}
	r.silences.invalidate()
	r.log.Info("silence expired", "silence", id, "by", by)
	return nil
}
