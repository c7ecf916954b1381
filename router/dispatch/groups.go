package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// joinedGroup reports whether the delivery already joined its rule's
// group (as its carrier or a member); ok is false when the store could
// not say (the delivery was put back).
func (r *Router) joinedGroup(rt *rules.Runtime, c *router.Claimed) (joined, ok bool) {
	if rule, found := r.ruleFor(rt, c.Rule); !found || rule.Group == nil {
		return false, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	batch, err := r.store.GroupOf(ctx, c.ID)
	if err != nil {
		r.postpone(c, r.now().Add(keyBusyWait), "", err, "group:", "group: look up")
		return false, false
	}
	return batch != "", true
}

// grouped runs a delivery of a grouped rule through its group: the
// first delivery of a new batch carries it and waits until it flushes;
// the others join it and are set aside as grouped. ok is true when the
// delivery goes now: a delivery of an ungrouped rule (digest nil), or a
// carrier whose batch flushed, with the digest its templates read
// (.events, .group). ok false means it was put back or set aside.
func (r *Router) grouped(rt *rules.Runtime, c *router.Claimed) (digest map[string]any, ok bool) {
	rule, found := r.ruleFor(rt, c.Rule)
	if !found || rule.Group == nil || c.Route >= len(rule.Routes) {
		return nil, true
	}
	g, route, now := rule.Group, rule.Routes[c.Route], r.now()
	view, err := r.view(rt, c.Event)
	if err != nil {
		return nil, true // the render fails, and says why
	}
	key, err := g.Key(c.Event.Source, view)
	if err != nil {
		// A by: that fails on this event: it groups with the others
		// that fail, rather than going alone or nowhere.
		r.logs.Log(r.log, now, slog.LevelWarn, "group-key:"+c.Rule, "group: key", "rule", c.Rule, "delivery_id", c.ID, "err", err)
		key = "(no key: " + err.Error() + ")"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := router.GroupMember{Scope: route.Scope(rule.Name), Key: key, Delivery: c.ID, Source: c.Event.Source, EventID: c.Event.ID, ReceivedAt: c.Event.ReceivedAt}
	batch, flushAt, err := r.store.JoinGroup(ctx, m, now, g.Wait, g.Interval)
	switch {
	case err != nil:
		r.postpone(c, now.Add(keyBusyWait), "", err, "group:", "group: join")
		return nil, false
	case batch != c.ID:
		r.setAside(c, router.StatusGrouped, "grouped into delivery "+batch+" (group "+groupName(key)+")")
		return nil, false
	case !flushAt.IsZero() && now.Before(flushAt):
		r.postpone(c, flushAt, "carries group "+groupName(key)+", which flushes at "+flushAt.UTC().Format(time.RFC3339), nil, "", "")
		return nil, false
	}
	members, err := r.store.FlushGroup(ctx, c.ID, now)
	if err != nil {
		r.postpone(c, now.Add(keyBusyWait), "", err, "group:", "group: flush")
		return nil, false
	}
	digest, err = r.digest(ctx, rt, g, key, c, members)
	if err != nil {
		r.postpone(c, now.Add(keyBusyWait), "", err, "group:", "group: read members")
		return nil, false
	}
	return digest, true
}

// groupName is a group key as logs show it.
func groupName(key string) string {
	if key == "" {
		return "(the rule's one group)"
	}
	return key
}

// digest is what a flushed batch's templates read: .events (the views of
// up to Max members, oldest first) and .group.
func (r *Router) digest(ctx context.Context, rt *rules.Runtime, g *rules.Group, key string, c *router.Claimed, members []router.GroupMember) (map[string]any, error) {
	if len(members) == 0 {
		// Only a batch pruned under its carrier: the carrier alone.
		members = []router.GroupMember{{Delivery: c.ID, Source: c.Event.Source, EventID: c.Event.ID, ReceivedAt: c.Event.ReceivedAt}}
	}
	events := make([]any, 0, min(len(members), g.Max))
	for _, m := range members[:min(len(members), g.Max)] {
		ev := c.Event
		if m.Delivery != c.ID {
			var err error
			if ev, err = r.store.GetEvent(ctx, m.Source, m.EventID); err != nil {
				return nil, fmt.Errorf("event %s/%s: %w", m.Source, m.EventID, err)
			}
		}
		view, err := r.view(rt, ev)
		if err != nil {
			events = append(events, map[string]any{"id": ev.ID, "error": err.Error()})
			continue
		}
		events = append(events, view.Data())
	}
	first, last := members[0].ReceivedAt, members[0].ReceivedAt
	for _, m := range members {
		first, last = minTime(first, m.ReceivedAt), maxTime(last, m.ReceivedAt)
	}
	return map[string]any{
		"events": events,
		"group": map[string]any{
			"key": key, "count": len(members), "first_at": first, "last_at": last,
			"truncated": max(0, len(members)-g.Max),
		},
	}, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
