package dispatch

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// fireEvery is how often the timers due are fired: a timer goes at most
// this late.
const fireEvery = 200 * time.Millisecond

// timerDelay is how long a route's delivery of a rule with unless: waits:
// its escalation step, or the rule's within.
func timerDelay(rule *rules.Rule, route *rules.Route) time.Duration {
	if route.Delay > 0 {
		return route.Delay
	}
	return rule.Unless.Within
}

// timerKey is the key the rule's timer for this event is stored under,
// "" for a rule without unless:. A same: that fails on the event gives a
// key no later event can match: the timer then fires when due, which is
// what a timer nobody can cancel does.
func (r *Router) timerKey(rule *rules.Rule, src *rules.Source, view *router.View) string {
	if rule.Unless == nil {
		return ""
	}
	key, err := rule.Unless.Key(rule.Name, src.Name, view)
	if err != nil {
		r.logs.Log(r.log, r.now(), slog.LevelWarn, "timer-key:"+rule.Name, "unless.same failed on the first event; its timer cannot be cancelled", "rule", rule.Name, "event_id", view.ID, "err", err)
		// JSON, as real keys are, and never one: no same value is an
		// object.
		b, _ := json.Marshal([]any{rule.Name, map[string]string{"uncancellable": view.ID}})
		return string(b)
	}
	return key
}

// cancelTimers cancels the waiting timers the event in view cancels: for
// every rule with unless: whose when it matches, those with its same
// values. view nil (a quarantined body) cancels nothing.
func (r *Router) cancelTimers(ctx context.Context, rt *rules.Runtime, src *rules.Source, view *router.View) error {
	if view == nil {
		return nil
	}
	for _, rule := range rt.Rules {
		u := rule.Unless
		if u == nil {
			continue
		}
		ok, err := u.Cancels(src.Name, view)
		if err != nil {
			r.logs.Log(r.log, r.now(), slog.LevelWarn, "unless-failed:"+rule.Name, "unless.when failed on an event; counted as not matched", "rule", rule.Name, "event_id", view.ID, "err", err)
			continue
		}
		if !ok {
			continue
		}
		key, err := u.Key(rule.Name, src.Name, view)
		if err != nil {
			r.logs.Log(r.log, r.now(), slog.LevelWarn, "timer-key:"+rule.Name, "unless.same failed on a cancelling event; it cancels nothing", "rule", rule.Name, "event_id", view.ID, "err", err)
			continue
		}
		n, err := r.store.CancelTimers(ctx, key, src.Name+"/"+view.ID, r.now())
		if err != nil {
			return err
		}
		if n > 0 {
			r.metrics.timers("cancelled", n)
			r.log.Info("timers cancelled", "rule", rule.Name, "by", view.ID, "deliveries", n)
		}
	}
	return nil
}

// fireTimers makes the waiting deliveries due by now pending and wakes
// their sinks' workers.
func (r *Router) fireTimers(ctx context.Context) {
	for {
		fired, err := r.store.FireTimers(ctx, r.now(), 256)
		if err != nil {
			r.logs.Log(r.log, r.now(), slog.LevelError, "fire-timers", "timers: fire", "err", err)
			return
		}
		r.metrics.timers("fired", len(fired))
		for _, f := range fired {
			if p := r.pools.get(f.Sink); p != nil {
				p.wake()
			}
		}
		if len(fired) < 256 {
			return
		}
	}
}

// timerData is what a timer's delivery's templates read as .timer.
func timerData(rule *rules.Rule, route *rules.Route, ev *router.EventRecord, now time.Time) map[string]any {
	due := ev.ReceivedAt.Add(timerDelay(rule, route))
	return map[string]any{
		"started_at": ev.ReceivedAt,
		"due_at":     due,
		"waited":     now.Sub(ev.ReceivedAt).Round(time.Second).String(),
	}
}

// waitingUnder lists the deliveries waiting under a timer key, for a trial
// of an event that would cancel them. It reads every waiting timer: a
// trial is rare, and timers are few next to deliveries.
func (r *Router) waitingUnder(ctx context.Context, key string) ([]string, error) {
	ts, err := r.store.Timers(ctx)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, t := range ts {
		if t.Key == key {
			for _, d := range t.Deliveries {
				ids = append(ids, d.ID)
			}
		}
	}
	return ids, nil
}

// ruleFor returns the rule a delivery was made by: the running config's,
// or, for a rule a reload removed while its timers waited, the rule as it
// was, so that they fire as they were made.
func (r *Router) ruleFor(rt *rules.Runtime, name string) (*rules.Rule, bool) {
	if rule, ok := rt.Rule(name); ok {
		return rule, true
	}
	r.retiredMu.Lock()
	defer r.retiredMu.Unlock()
	rule, ok := r.retired[name]
	return rule, ok
}

// retire keeps, across a reload from old to rt, the rules with unless:
// that rt removes: their timers may still be waiting. A rule rt has again
// is its own.
func (r *Router) retire(old, rt *rules.Runtime) {
	r.retiredMu.Lock()
	defer r.retiredMu.Unlock()
	if r.retired == nil {
		r.retired = map[string]*rules.Rule{}
	}
	for _, rule := range old.Rules {
		if _, kept := rt.Rule(rule.Name); !kept && rule.Unless != nil {
			r.retired[rule.Name] = rule
		}
	}
	for _, rule := range rt.Rules {
		delete(r.retired, rule.Name)
	}
}
