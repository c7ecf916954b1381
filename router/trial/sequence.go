package trial

// Sequence tests: rule tests of several events on a virtual clock, for
// rules with unless: (timers), whose deliveries depend on what comes
// later. Instead of one event a test gives events:, each at an offset
// from the test's start, and expects what fired and what was cancelled:
//
//	tests:
//	  - name: a chat answered after 10 minutes escalates once
//	    source: siq                       # default of every event
//	    at: 2026-12-07T10:00:00Z          # the clock's start; default SequenceEpoch
//	    events:
//	      - {event_file: missed.json, at: 0s}
//	      - {event_file: attended.json, at: 10m}
//	      - {event: {kind: order.created}, at: 12m, source: gen, headers: {X-Kind: a}}
//	    until: 1h                         # optional; default: the last due time
//	    expect:
//	      fired:                          # deliveries that must have fired
//	        - {rule: missed-unanswered, sink: slack, at: 5m, contains: {text: "5m0s"}}
//	      cancelled:                      # deliveries that must have been cancelled
//	        - {rule: missed-unanswered, sink: pager, by: attended.json}
//	      not_fired:                      # deliveries that must not have fired
//	        - {sink: pager}
//
// The run is what the router does, at each event's offset in turn:
// timers due by then fire first (the router fires them at most 200 ms
// late); then the event cancels, for every rule with unless: whose when
// it matches, the rule's waiting timers with its same: values; then it is
// matched, and each route of a matched rule makes a delivery: one of a
// rule with unless: waits until its offset plus the route's delay: (or
// unless.within), one of another rule fires at once. An event with the
// id of an earlier one from its source is a duplicate: it cancels, but
// makes no deliveries, as the router keeps the first. At the end, or at
// until:, whatever is due has fired; the rest still waits. A fired
// delivery is rendered as the router would then, with .timer (waited is
// due minus start); what happens after it fires (a schedule, a group) is
// for a test of one event to check.
//
// fired: and not_fired: name deliveries by sink, by rule if given (any
// rule's otherwise), by at: (the offset it fired at) and contains: if
// given; an entry of fired: holds if some fired delivery meets it, one of
// not_fired: if none does. cancelled: names them by sink and rule, and by
// by: if given: the cancelling event, as its event_file is written or its
// index in events: (0 for the first).

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
)

// SequenceEpoch is when a sequence test's clock starts without at:: a
// fixed time, so that what templates render from .timer or received_at
// is the same at every run.
var SequenceEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// SequenceEvent is one event of a sequence test.
type SequenceEvent struct {
	// EventFile or Event is the payload, as a test of one event gives it.
	EventFile string    `yaml:"event_file"`
	Event     yaml.Node `yaml:"event"`
	// Source and Headers default to the test's.
	Source  string            `yaml:"source"`
	Headers map[string]string `yaml:"headers"`
	// At is when the event arrives, from the test's start; events are
	// listed in time order.
	At config.Duration `yaml:"at"`

	payload []byte
}

// FiredExpect names fired deliveries: by sink, by rule if given, by the
// offset from the test's start they fired at (At) if given, and by
// substrings their rendered fields must contain (as RouteExpect's).
type FiredExpect struct {
	Rule     string            `yaml:"rule"`
	Sink     string            `yaml:"sink"`
	At       *config.Duration  `yaml:"at"`
	Contains map[string]string `yaml:"contains"`
}

// String names the route as failures do.
func (e FiredExpect) String() string { return RouteExpect{Rule: e.Rule, Sink: e.Sink}.String() }

// CancelledExpect names cancelled deliveries: by sink, by rule if given,
// and by the event that cancelled them if By is given: its event_file as
// the test writes it, or its index in events: (0 for the first).
type CancelledExpect struct {
	Rule string `yaml:"rule"`
	Sink string `yaml:"sink"`
	By   string `yaml:"by"`

	by []int // the events By names
}

// String names the route as failures do.
func (e CancelledExpect) String() string { return RouteExpect{Rule: e.Rule, Sink: e.Sink}.String() }

// decodeSequence checks a sequence test t, decoded from node, and reads
// its events.
func decodeSequence(file string, node *yaml.Node, path string, t *Test) config.ConfigErrors {
	var errs config.ConfigErrors
	// errAt reports a problem at the node keys lead to, named as the
	// decoder names them: tests[0].events[1].at.
	errAt := func(format string, args []any, keys ...string) {
		p := path
		for _, k := range keys {
			if _, err := strconv.Atoi(k); err == nil {
				p += "[" + k + "]"
			} else {
				p += "." + k
			}
		}
		errs = append(errs, config.NodeError(config.LookupNode(node, keys...), p, format, args...))
	}
	if t.EventFile != "" || t.Event.Kind != 0 {
		errAt("give events (a sequence) or one event (event or event_file), not both", nil, "events")
		return errs
	}
	if len(t.Events) == 0 {
		errAt("a sequence test needs at least one event", nil, "events")
		return errs
	}
	var last time.Duration
	for i := range t.Events {
		ev := &t.Events[i]
		at := time.Duration(ev.At)
		idx := strconv.Itoa(i)
		// (config.Duration refuses a negative one.)
		if at < last {
			errAt("%s is before the event above it (%s): list events in time order", []any{at, last}, "events", idx, "at")
		}
		last = max(last, at)
		b, key, err := readEvent(file, ev.EventFile, &ev.Event)
		switch {
		case err != nil:
			errAt("%v", []any{err}, "events", idx, key)
		case b == nil:
			errAt("an event needs event: (inline) or event_file:", nil, "events", idx)
		}
		ev.payload = b
	}
	if t.Until != nil && time.Duration(*t.Until) < last {
		errAt("%s is before the last event (%s)", []any{time.Duration(*t.Until), last}, "until")
	}
	e := &t.Expect
	if len(e.Match)+len(e.NoMatch)+len(e.Routes)+len(e.NoRoutes) > 0 {
		errAt("match, no_match, routes and no_routes are for a test of one event; a sequence test expects fired, cancelled or not_fired", nil, "expect")
	}
	if len(e.Fired)+len(e.Cancelled)+len(e.NotFired) == 0 {
		errAt("a sequence test needs at least one expectation (fired, cancelled or not_fired)", nil, "expect")
	}
	for key, list := range map[string][]FiredExpect{"fired": e.Fired, "not_fired": e.NotFired} {
		for j, f := range list {
			if f.Sink == "" {
				errAt("an expectation needs sink:", nil, "expect", key, strconv.Itoa(j), "sink")
			}
		}
	}
	for j := range e.Cancelled {
		c := &e.Cancelled[j]
		if c.Sink == "" {
			errAt("an expectation needs sink:", nil, "expect", "cancelled", strconv.Itoa(j), "sink")
		}
		if c.By == "" {
			continue
		}
		if n, err := strconv.Atoi(c.By); err == nil {
			if n < 0 || n >= len(t.Events) {
				errAt("there is no events[%d]: by: takes an index from 0 to %d, or an event_file", []any{n, len(t.Events) - 1}, "expect", "cancelled", strconv.Itoa(j), "by")
			}
			c.by = []int{n}
			continue
		}
		for i, ev := range t.Events {
			if ev.EventFile == c.By {
				c.by = append(c.by, i)
			}
		}
		if c.by == nil {
			errAt("names no event of the test: give an event_file it lists, or an index of events: (0 the first)", nil, "expect", "cancelled", strconv.Itoa(j), "by")
		}
	}
	errs.Sort()
	return errs
}

// Delivery states in a sequence.
const (
	seqWaiting   = router.StatusWaiting
	seqFired     = "fired"
	seqCancelled = router.StatusCancelled
)

// seqEvent is an event of a sequence, decoded.
type seqEvent struct {
	src  *rules.Source
	view *router.View
	// name is how failures name it: events[1] (attended.json).
	name string
}

// seqDelivery is a delivery a sequence made.
type seqDelivery struct {
	rule  *rules.Rule
	route *rules.Route
	event int    // the event that made it
	key   string // its timer key; "" for a rule without unless:
	// keyErr is why same: failed on its event: nothing can cancel it.
	keyErr string
	due    time.Duration // when it fires, from the start
	state  string
	by     int           // the event that cancelled it
	at     time.Duration // when it fired or was cancelled
	// fields, dedupKey and err are its rendering, once it fired.
	fields   map[string]string
	dedupKey string
	err      string
}

// sequence is a sequence test being run.
type sequence struct {
	ctx    context.Context
	rt     *rules.Runtime
	t      *Test
	start  time.Time
	events []seqEvent
	ds     []*seqDelivery
	// notes are what else happened that a failure should show: rules
	// failing on an event, duplicates.
	notes []string
}

func runSequence(ctx context.Context, rt *rules.Runtime, t *Test) TestResult {
	out := TestResult{Test: t}
	s := &sequence{ctx: ctx, rt: rt, t: t, start: SequenceEpoch}
	if t.At != "" {
		at, err := time.Parse(time.RFC3339, t.At)
		if err != nil {
			out.Failures = []string{"at: want an RFC 3339 time such as 2026-12-05T12:00:00Z"}
			return out
		}
		s.start = at
	}
	seen := map[string]int{} // source and event id, or body hash → event
	for i, ev := range t.Events {
		at := time.Duration(ev.At)
		s.fire(at)
		source, headers := t.Source, t.Headers
		if ev.Source != "" {
			source = ev.Source
		}
		if ev.Headers != nil {
			headers = ev.Headers
		}
		src, view, err := decodeEvent(rt, source, ev.payload, headers, s.start.Add(at))
		if err != nil {
			out.Failures = []string{fmt.Sprintf("events[%d]: %v", i, err)}
			return out
		}
		// Named by its file, or by its event name when inline.
		name := fmt.Sprintf("events[%d] (%s)", i, cmp.Or(ev.EventFile, view.Name, "inline"))
		s.events = append(s.events, seqEvent{src: src, view: view, name: name})
		s.cancel(i, at)
		// The store's duplicate check: the same id from the source, or
		// the same body from one that signs only the body.
		id := src.Name + "\x00" + view.ID
		if src.Kind.SignsBodyOnly {
			sum := sha256.Sum256(ev.payload)
			id = src.Name + "\x00" + string(sum[:])
		}
		if first, dup := seen[id]; dup {
			s.notes = append(s.notes, fmt.Sprintf("the router takes %s for a duplicate of %s and keeps the first: it made no deliveries", name, s.events[first].name))
			continue
		}
		seen[id] = i
		s.match(i, at)
	}
	until := time.Duration(t.Events[len(t.Events)-1].At)
	if t.Until != nil {
		until = time.Duration(*t.Until)
	} else {
		for _, d := range s.ds {
			until = max(until, d.due)
		}
	}
	s.fire(until)
	out.Failures = s.check(until)
	return out
}

// fire fires, in due order, the waiting deliveries due by at.
func (s *sequence) fire(at time.Duration) {
	var due []*seqDelivery
	for _, d := range s.ds {
		if d.state == seqWaiting && d.due <= at {
			due = append(due, d)
		}
	}
	slices.SortStableFunc(due, func(a, b *seqDelivery) int { return cmp.Compare(a.due, b.due) })
	for _, d := range due {
		s.fired(d, d.due)
	}
}

// fired renders d as a worker would at offset at, and marks it fired.
func (s *sequence) fired(d *seqDelivery, at time.Duration) {
	d.state, d.at = seqFired, at
	var timer map[string]any
	if d.rule.Unless != nil {
		start := time.Duration(s.t.Events[d.event].At)
		timer = timerData(s.start.Add(start), s.start.Add(d.due))
	}
	r, err := trialDelivery(s.ctx, s.rt, d.rule, d.route, s.events[d.event].view, nil, timer)
	if r != nil {
		d.fields, d.dedupKey = r.Fields, r.DedupKey
	}
	if err != nil {
		d.err = err.Error()
	}
}

// cancel cancels what event i cancels, as the router's cancelTimers: for
// every rule with unless: whose when it matches, the rule's waiting
// deliveries with its same: values.
func (s *sequence) cancel(i int, at time.Duration) {
	ev := s.events[i]
	for _, rule := range s.rt.Rules {
		u := rule.Unless
		if u == nil {
			continue
		}
		ok, err := u.Cancels(ev.src.Name, ev.view)
		if err != nil {
			s.notes = append(s.notes, fmt.Sprintf("unless.when of rule %s fails on %s (%v): counted as not matched, so it cancels nothing", rule.Name, ev.name, err))
			continue
		}
		if !ok {
			continue
		}
		key, err := u.Key(rule.Name, ev.src.Name, ev.view)
		if err != nil {
			s.notes = append(s.notes, fmt.Sprintf("%s matches unless.when of rule %s, but unless.same fails on it (%v): it cancels nothing", ev.name, rule.Name, err))
			continue
		}
		for _, d := range s.ds {
			if d.state == seqWaiting && d.key == key && d.keyErr == "" {
				d.state, d.by, d.at = seqCancelled, i, at
			}
		}
	}
}

// match makes event i's deliveries, as ingest does.
func (s *sequence) match(i int, at time.Duration) {
	ev := s.events[i]
	matched := s.rt.Match(ev.src.Name, ev.view, func(rule string, err error) {
		s.notes = append(s.notes, fmt.Sprintf("rule %s fails on %s (%v): counted as not matched", rule, ev.name, err))
	})
	for _, rule := range matched {
		var key, keyErr string
		if rule.Unless != nil {
			var err error
			if key, err = rule.Unless.Key(rule.Name, ev.src.Name, ev.view); err != nil {
				keyErr = err.Error()
			}
		}
		for _, route := range rule.Routes {
			// A switched-off optional sink still counts: tests are about
			// the rules, not the environment they run in.
			d := &seqDelivery{rule: rule, route: route, event: i, key: key, keyErr: keyErr, due: at, state: seqWaiting}
			s.ds = append(s.ds, d)
			if rule.Unless == nil {
				s.fired(d, at)
				continue
			}
			d.due = at + timerDelay(rule, route)
		}
	}
}

// of returns the deliveries of the route e names, in any state.
func (s *sequence) of(rule, sink string) []*seqDelivery {
	var out []*seqDelivery
	for _, d := range s.ds {
		if d.route.Sink == sink && (rule == "" || d.rule.Name == rule) {
			out = append(out, d)
		}
	}
	return out
}

// describe says what became of d, for failures.
func (s *sequence) describe(d *seqDelivery, until time.Duration) string {
	route := d.rule.Name + " → " + d.route.Sink
	made := fmt.Sprintf("made by %s at +%s", s.events[d.event].name, time.Duration(s.t.Events[d.event].At))
	switch d.state {
	case seqFired:
		switch {
		case d.rule.Unless == nil:
			made += "; rule " + d.rule.Name + " has no unless:, so nothing cancels it"
		case d.keyErr != "":
			made += "; unless.same fails on that event (" + d.keyErr + "), so nothing could cancel it"
		}
		return fmt.Sprintf("%s fired at +%s, %s", route, d.at, made)
	case seqCancelled:
		return fmt.Sprintf("%s cancelled at +%s by %s, %s, due at +%s", route, d.at, s.events[d.by].name, made, d.due)
	default:
		return fmt.Sprintf("%s still waiting at the end (+%s), %s, due at +%s", route, until, made, d.due)
	}
}

// got is the detail lines of a failure: what became of ds, then the
// notes.
func (s *sequence) got(ds []*seqDelivery, until time.Duration) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("\n    got: " + s.describe(d, until))
	}
	for _, n := range s.notes {
		b.WriteString("\n    note: " + n)
	}
	return b.String()
}

// unknown checks that the rule and the sink an expectation names exist
// and that the rule routes to the sink; "" if so.
func (s *sequence) unknown(name, rule, sink string) string {
	if _, ok := s.rt.Sinks[sink]; !ok {
		return fmt.Sprintf("%s: no sink %q in the config", name, sink)
	}
	if rule == "" {
		return ""
	}
	r, ok := s.rt.Rule(rule)
	if !ok {
		return fmt.Sprintf("%s: no rule %q in the config", name, rule)
	}
	var sinks []string
	for _, x := range r.Routes {
		if x.Sink == sink {
			return ""
		}
		sinks = append(sinks, x.Sink)
	}
	return fmt.Sprintf("%s: rule %s has no route to sink %s (it routes to: %s)", name, rule, sink, listOrNone(sinks))
}

// unmade is the failure of an expectation whose route made no delivery:
// with a rule named, why it matched none of the events; without, every
// delivery the run made.
func (s *sequence) unmade(name, want, rule, sink string, until time.Duration) string {
	r, ok := s.rt.Rule(rule)
	if !ok {
		msg := fmt.Sprintf("%s: %s, but no rule that matched an event routes to sink %s", name, want, sink)
		if len(s.ds) == 0 {
			msg += "\n    deliveries made: (none)"
		}
		return msg + s.got(s.ds, until)
	}
	lines := []string{fmt.Sprintf("%s: %s, but rule %s matched none of the events", name, want, rule)}
	for _, ev := range s.events {
		matched, errText, explanation := s.rt.Explain(r, ev.src, ev.view)
		if matched {
			continue // a duplicate, which makes no deliveries (see the notes)
		}
		lines = append(lines, "    "+ev.name+":")
		for _, l := range explanation {
			lines = append(lines, "        "+l)
		}
		if errText != "" {
			lines = append(lines, "        error: "+errText)
		}
	}
	return strings.Join(lines, "\n") + s.got(nil, until)
}

// check checks the test's expectations on what the run made.
func (s *sequence) check(until time.Duration) []string {
	var fails []string
	for _, e := range s.t.Expect.Fired {
		fails = append(fails, s.checkFired(e, until)...)
	}
	for _, e := range s.t.Expect.Cancelled {
		if f := s.checkCancelled(e, until); f != "" {
			fails = append(fails, f)
		}
	}
	for _, e := range s.t.Expect.NotFired {
		if f := s.checkNotFired(e, until); f != "" {
			fails = append(fails, f)
		}
	}
	return fails
}

// at says "at +5m0s" for an expectation with at:, "" without.
func atText(at *config.Duration) string {
	if at == nil {
		return ""
	}
	return " at +" + time.Duration(*at).String()
}

func (s *sequence) checkFired(e FiredExpect, until time.Duration) []string {
	name := e.String()
	if msg := s.unknown(name, e.Rule, e.Sink); msg != "" {
		return []string{msg}
	}
	want := "want it fired" + atText(e.At)
	all := s.of(e.Rule, e.Sink)
	if len(all) == 0 {
		return []string{s.unmade(name, want, e.Rule, e.Sink, until)}
	}
	var fired []*seqDelivery
	for _, d := range all {
		if d.state == seqFired && (e.At == nil || d.at == time.Duration(*e.At)) {
			fired = append(fired, d)
		}
	}
	if len(fired) == 0 {
		return []string{name + ": " + want + s.got(all, until)}
	}
	var best []string
	for _, d := range fired {
		fails := s.checkRendered(d, e.Contains)
		if len(fails) == 0 {
			return nil
		}
		if best == nil || len(fails) < len(best) {
			best = fails
		}
	}
	return best
}

// checkRendered checks a fired delivery's rendering: that it rendered,
// and contains.
func (s *sequence) checkRendered(d *seqDelivery, contains map[string]string) []string {
	name := fmt.Sprintf("route %s → %s (fired at +%s)", d.rule.Name, d.route.Sink, d.at)
	if sr := s.rt.Sinks[d.route.Sink]; d.err != "" && sr != nil && !sr.Disabled {
		return []string{name + ": " + d.err}
	}
	return checkContains(name, contains, RouteOutcome{Rule: d.rule.Name, Sink: d.route.Sink, Fields: d.fields, DedupKey: d.dedupKey})
}

func (s *sequence) checkCancelled(e CancelledExpect, until time.Duration) string {
	name := e.String()
	if msg := s.unknown(name, e.Rule, e.Sink); msg != "" {
		return msg
	}
	want := "want it cancelled"
	if e.by != nil {
		var by []string
		for _, i := range e.by {
			by = append(by, s.eventName(i))
		}
		want += " by " + strings.Join(by, " or ")
	}
	all := s.of(e.Rule, e.Sink)
	if len(all) == 0 {
		return s.unmade(name, want, e.Rule, e.Sink, until)
	}
	for _, d := range all {
		if d.state == seqCancelled && (e.by == nil || slices.Contains(e.by, d.by)) {
			return ""
		}
	}
	return name + ": " + want + s.got(all, until)
}

// eventName names event i, also when the run stopped before it.
func (s *sequence) eventName(i int) string {
	if i < len(s.events) {
		return s.events[i].name
	}
	return fmt.Sprintf("events[%d]", i)
}

func (s *sequence) checkNotFired(e FiredExpect, until time.Duration) string {
	name := e.String()
	if msg := s.unknown(name, e.Rule, e.Sink); msg != "" {
		return msg
	}
	var hit []*seqDelivery
	for _, d := range s.of(e.Rule, e.Sink) {
		if d.state == seqFired && (e.At == nil || d.at == time.Duration(*e.At)) && len(s.checkRendered(d, e.Contains)) == 0 {
			hit = append(hit, d)
		}
	}
	if len(hit) == 0 {
		return ""
	}
	return name + ": want it not fired" + atText(e.At) + s.got(hit, until)
}
