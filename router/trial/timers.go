package trial

// Timers in a trial: a rule with unless: stores its deliveries waiting,
// so a trial says when they would fire and what would cancel them; and an
// event that matches some rule's unless.when says which waiting
// deliveries it would cancel. A trial cancels nothing.

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// timerDelay is how long a route's delivery of a rule with unless: waits,
// as the router's (dispatch's timerDelay): its escalation step (delay:),
// or the rule's within.
func timerDelay(rule *rules.Rule, route *rules.Route) time.Duration {
	if route.Delay > 0 {
		return route.Delay
	}
	return rule.Unless.Within
}

// timerData is what a timer's templates read as .timer when it fires on
// time: the router's workers give waited as the time since the first
// event when they render, which is due minus start but for the moment
// they take to pick it up.
func timerData(start, due time.Time) map[string]any {
	return map[string]any{
		"started_at": start,
		"due_at":     due,
		"waited":     due.Sub(start).Round(time.Second).String(),
	}
}

// waitingWhy says when a route's delivery of a rule with unless: would
// fire and what would cancel it, with the first event's same: values,
// since they are what a later event must equal.
func waitingWhy(rule *rules.Rule, route *rules.Route, src *rules.Source, view *router.View, now time.Time) string {
	delay := timerDelay(rule, route)
	when := "fires at +" + delay.String() + " (" + now.Add(delay).UTC().Format(time.RFC3339) + ")"
	key, err := rule.Unless.Key(rule.Name, src.Name, view)
	if err != nil {
		return when + " whatever comes later: unless.same fails on this event (" + err.Error() + "), so no later event can cancel it"
	}
	return when + " unless a later event matches unless.when with the same " + sameValues(rule.Unless, key)
}

// sameValues shows a timer key's same: values as "entity_id = "4052…"",
// each value as the JSON the key holds: a number 42 and a string "42"
// make different keys, and must look different.
func sameValues(u *rules.Unless, key string) string {
	var vals []json.RawMessage
	if err := json.Unmarshal([]byte(key), &vals); err != nil || len(vals) != len(u.Same)+1 {
		return key
	}
	parts := make([]string, len(u.Same))
	for i, s := range u.Same {
		parts[i] = s + " = " + string(vals[i+1])
	}
	return strings.Join(parts, ", ")
}

// trialCancels lists, for every rule with unless: whose when the event
// matches, what it would cancel, as the router's cancelTimers would find
// it: an unless.when that fails on the event counts as not matched there
// too, so it is left out here.
func trialCancels(ctx context.Context, rt *rules.Runtime, src *rules.Source, view *router.View, o Options) []TimerCancel {
	var out []TimerCancel
	for _, rule := range rt.Rules {
		u := rule.Unless
		if u == nil {
			continue
		}
		if ok, err := u.Cancels(src.Name, view); err != nil || !ok {
			continue
		}
		tc := TimerCancel{Rule: rule.Name}
		key, err := u.Key(rule.Name, src.Name, view)
		switch {
		case err != nil:
			tc.Error = "the event matches unless.when, but unless.same fails on it (" + err.Error() + "): it cancels nothing"
		case o.WaitingTimers == nil:
			tc.Key, tc.Same = key, sameValues(u, key)
			tc.Note = "no store was asked: a running router would cancel every delivery waiting under timer key " + key
		default:
			tc.Key, tc.Same = key, sameValues(u, key)
			ids, err := o.WaitingTimers(ctx, key)
			if err != nil {
				tc.Error = "look up the waiting timers: " + err.Error()
				break
			}
			tc.Deliveries = append([]string{}, ids...)
		}
		out = append(out, tc)
	}
	return out
}
