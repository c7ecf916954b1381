package trial

// The trial run (README: Trying a rule before it goes live): which rules an event matches and why
// the others do not, and the exact request each matched route's sink would
// make, without sending it; or, asked to send, real deliveries through the
// real sinks that leave no trace in the store (no event, no delivery, no
// dedup key).

import (
	"context"
	"crypto/rsa"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/router/rules"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/internal/randomid"
	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
)

// Input is the event a trial runs on.
type Input struct {
	// Source names the configured source; "" means the only one.
	Source string
	// Payload is the JSON body as the sender would post it.
	Payload []byte
	// Headers are request headers (any case), for generic sources that
	// name or identify events by them (GitHub's X-GitHub-Event).
	Headers map[string]string
	// Send delivers for real through the sinks of Options.Sinks.
	Send bool
}

// Options say how a trial renders and sends.
type Options struct {
	// Capture builds the sinks that render requests; nil shows no request
	// (fields only).
	Capture config.Capturer
	// Sinks are the live sinks a Send delivers through; nil: the
	// runtime's own.
	Sinks map[string]*rules.SinkRuntime
	// Now is the clock (received_at of the event); default time.Now.
	Now func() time.Time
	// SigningKey returns the key a secured sink signs with (the router's
	// keyring); nil: a Send to a secured sink fails, since an unsigned
	// request must never go out.
	SigningKey func(ctx context.Context, sink string) (*rsa.PrivateKey, error)
	// Links looks up what each sink created for a dedup key value (the
	// store's Links); nil: there is no store to ask, and every key is
	// taken as new.
	Links func(ctx context.Context, key string) (map[string]router.Link, error)
	// CooldownHolder and Silenced answer, with a store, whether a
	// route's cooldown or a silence would hold the delivery back; nil:
	// none would.
	CooldownHolder func(ctx context.Context, scope, key string, now time.Time) (string, time.Time, error)
	Silenced       func(source string, view *router.View, rule, sink string) *router.Silence
	// WaitingTimers returns the ids of the deliveries waiting under a
	// timer key (a rule's unless: key: JSON of its name and same:
	// values), which an event matching the rule's unless.when would
	// cancel; it must change nothing. nil: there is no store to ask, and
	// the result names the key instead (see TimerCancel).
	WaitingTimers func(ctx context.Context, timerKey string) ([]string, error)
}

// Result is the answer of POST /api/trial, field for field.
type Result struct {
	Source    string         `json:"source"`
	EventName string         `json:"event_name"`
	EventID   string         `json:"event_id"`
	Send      bool           `json:"send"`
	Rules     []RuleOutcome  `json:"rules"`
	Routes    []RouteOutcome `json:"routes"`
	// Cancels are the timers the event would cancel: one per rule with
	// unless: whose when it matches, whichever rules it matches itself
	// (a cancelling event may come from any source). A trial cancels
	// nothing. Left out of the JSON when empty, so that the answer to an
	// event that cancels nothing keeps the shape it always had.
	Cancels []TimerCancel `json:"cancels,omitempty"`
}

// TimerCancel is what an event would cancel of one rule's timers: the
// deliveries waiting under the timer key its same: values make.
type TimerCancel struct {
	Rule string `json:"rule"`
	// Key is the timer key, JSON of the rule's name and the event's
	// same: values, as the store keeps it: waiting deliveries of an
	// earlier event with equal values (42 and "42" differ) are under it.
	// "" when same: fails on the event (see Error).
	Key string `json:"key"`
	// Same is the same: values for people: entity_id = "4052…", each
	// value as JSON.
	Same string `json:"same"`
	// Deliveries are the ids of the deliveries waiting under Key, which
	// a real event would cancel (empty: none waits); nil when there was
	// no store to ask (Note says so).
	Deliveries []string `json:"deliveries"`
	// Note says what the trial could not tell, "" if nothing.
	Note string `json:"note,omitempty"`
	// Error is why the event would cancel nothing though it matches
	// unless.when (same: fails on it), or why the store could not be
	// asked; "" if none.
	Error string `json:"error,omitempty"`
}

// RuleOutcome says whether a rule matched, and why.
type RuleOutcome struct {
	Name    string `json:"name"`
	Matched bool   `json:"matched"`
	// Explanation has one line per comparison and boolean step of the
	// rule's when, in evaluation order, e.g.
	// chat.rating == "sad" → "happy" == "sad" → false.
	Explanation []string `json:"explanation"`
	// Error is the run-time error that made the rule count as not
	// matched, "" if none.
	Error string `json:"error"`
}

// RouteOutcome is one route of a matched rule.
type RouteOutcome struct {
	Rule  string `json:"rule"`
	Route int    `json:"route"`
	Sink  string `json:"sink"`
	Kind  string `json:"kind"`
	// Request is the HTTP request the sink would make, secrets redacted;
	// nil for sinks that do not speak HTTP (log) or when none was made.
	Request *Request `json:"request"`
	// Fields are the route's rendered message fields.
	Fields map[string]string `json:"fields"`
	// DedupKey is the rendered dedup_key, if the route has one. A trial
	// looks it up (when it has a store) but never records it.
	DedupKey string `json:"dedup_key,omitempty"`
	// Action says, for a route with a dedup key, what a real delivery
	// would do to the object the key names: create it, follow up on it,
	// post a Slack conversation's root or reply under it.
	Action string `json:"action,omitempty"`
	// Links are what the sinks created for the dedup key value, as the
	// route's templates see them under .links; empty when none did or
	// there is no store to ask.
	Links map[string]router.Link `json:"links,omitempty"`
	// Schedule says, for a route with during: or outside:, whether its
	// delivery would go now or wait, and until when.
	Schedule string `json:"schedule,omitempty"`
	// Outcome is what a real delivery would come to first: sent,
	// waiting (a rule with unless: holds it until its timer fires or a
	// later event cancels it), deferred (outside its schedule),
	// suppressed (a cooldown, or when_closed: drop), silenced, or grouped
	// (held for its group's digest); Why says by what, for all but sent.
	Outcome string `json:"outcome"`
	Why     string `json:"why,omitempty"`
	// Error says why no delivery would be made (a template that fails, a
	// sink that is switched off or refuses the fields), "" if none.
	Error string `json:"error"`
	// Result is what the sink answered a real send; nil without one.
	Result *TrialSendResult `json:"result"`
}

// Request is a rendered HTTP request.
type Request struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// TrialSendResult is the outcome of one real trial delivery.
type TrialSendResult struct {
	StatusCode int    `json:"status_code"`
	RemoteID   string `json:"remote_id"`
	Error      string `json:"error"`
}

// Error is a trial that cannot run: an unknown source, or a payload
// that does not decode.
type Error struct{ Msg string }

// Error returns the message.
func (e *Error) Error() string { return e.Msg }

// Trial runs the rules on in's event. Without Send it delivers nothing:
// requests are rendered through o.Capture's sinks. With Send, each route
// of a matched rule is delivered once through o.Sinks (one attempt with
// the sink's timeout, delivery id "trial-…", no dedup key), and nothing is
// written to the store either way.
func Run(ctx context.Context, rt *rules.Runtime, in Input, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sinks == nil {
		o.Sinks = rt.Sinks
	}
	src, view, err := decodeEvent(rt, in.Source, in.Payload, in.Headers, o.Now())
	if err != nil {
		return nil, err
	}
	res := &Result{Source: src.Name, EventName: view.Name, EventID: view.ID, Send: in.Send, Rules: []RuleOutcome{}, Routes: []RouteOutcome{}, Cancels: trialCancels(ctx, rt, src, view, o)}
	var matched []*rules.Rule
	for _, r := range rt.Rules {
		tr := trialRule(rt, r, src, view)
		res.Rules = append(res.Rules, tr)
		if tr.Matched {
			matched = append(matched, r)
		}
	}
	trialRoutes(ctx, rt, res, matched, src, view, in.Send, o)
	return res, nil
}

// decodeEvent decodes an event received at at from the source named
// (default the only one), as ingest does: headers the router drops are
// left out of the view.
func decodeEvent(rt *rules.Runtime, source string, payload []byte, in map[string]string, at time.Time) (*rules.Source, *router.View, error) {
	src, err := trialSource(rt, source)
	if err != nil {
		return nil, nil, err
	}
	headers := make(map[string]string, len(in))
	for k, v := range in {
		if k = strings.ToLower(k); !rt.DropsHeader(k) {
			headers[k] = v
		}
	}
	view, err := src.Decode(&router.Incoming{Source: src.Name, Headers: headers, Body: payload, ReceivedAt: at})
	if err != nil {
		return nil, nil, &Error{Msg: fmt.Sprintf("the event does not decode as a %s event (the router would quarantine it): %v", src.Type, err)}
	}
	return src, view, nil
}

func trialSource(rt *rules.Runtime, name string) (*rules.Source, error) {
	if name == "" {
		if len(rt.Sources) == 1 {
			return rt.Sources[0], nil
		}
		names := make([]string, len(rt.Sources))
		for i, s := range rt.Sources {
			names[i] = s.Name
		}
		return nil, &Error{Msg: "name a source: the config has " + strings.Join(names, ", ")}
	}
	s, ok := rt.Source(name)
	if !ok {
		return nil, &Error{Msg: fmt.Sprintf("no source %q in the config", name)}
	}
	return s, nil
}

func trialRule(rt *rules.Runtime, r *rules.Rule, src *rules.Source, view *router.View) RuleOutcome {
	tr := RuleOutcome{Name: r.Name}
	tr.Matched, tr.Error, tr.Explanation = rt.Explain(r, src, view)
	return tr
}

// trialRoutes renders (and, with send, delivers) every route of the
// matched rules.
func trialRoutes(ctx context.Context, rt *rules.Runtime, res *Result, matched []*rules.Rule, src *rules.Source, view *router.View, send bool, o Options) {
	var capture *captureSinks
	if o.Capture != nil && len(matched) > 0 {
		needed := map[string]bool{}
		for _, rule := range matched {
			for _, route := range rule.Routes {
				needed[route.Sink] = true
			}
		}
		capture = buildCaptureSinks(rt, o.Capture, needed)
	}
	type pending struct {
		i int
		d *router.Delivery
	}
	var sends []pending
	for _, rule := range matched {
		for _, route := range rule.Routes {
			tr := RouteOutcome{Rule: rule.Name, Route: route.Index, Sink: route.Sink, Fields: map[string]string{}}
			if w := route.Window; w != nil {
				now := o.Now()
				verdict := "would go now"
				if !w.Allows(now) {
					verdict = "would be deferred"
				}
				tr.Schedule = verdict + " (" + w.Key() + "): " + w.Schedule.Describe(now)
			}
			tr.Outcome, tr.Why = outcome(ctx, rule, route, view, src, o)
			sr := rt.Sinks[route.Sink]
			if sr != nil {
				tr.Kind = sr.Kind
			}
			var timer map[string]any
			if rule.Unless != nil {
				// Rendered as it would be when the timer fires on time.
				now := o.Now()
				timer = timerData(now, now.Add(timerDelay(rule, route)))
			}
			d, err := trialDelivery(ctx, rt, rule, route, view, o.Links, timer)
			if d != nil {
				tr.Fields = d.Fields
				tr.DedupKey = d.DedupKey
				tr.Links = d.links
				if err == nil && sr != nil && route.DedupKey != nil {
					tr.Action = action(sr, route, d, o.Links != nil)
				}
			}
			switch {
			case err != nil:
				tr.Error = err.Error()
			case sr == nil:
				tr.Error = fmt.Sprintf("sink %q is not in the config", route.Sink)
			case sr.Disabled:
				tr.Error = "the sink is switched off (it is optional, and a variable it needs is empty): no delivery would be made"
			default:
				if capture != nil {
					tr.Request, tr.Error = capture.Render(ctx, sr, copyDelivery(&d.Delivery))
				}
				if send && tr.Error == "" {
					sends = append(sends, pending{len(res.Routes), copyDelivery(&d.Delivery)})
				}
			}
			res.Routes = append(res.Routes, tr)
		}
	}
	// In parallel, as the workers would: one slow sink must not hold up
	// the others' answers.
	var wg sync.WaitGroup
	for _, s := range sends {
		tr := &res.Routes[s.i]
		var red *redact.Redactor
		if capture != nil {
			red = capture.redactors[tr.Sink]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.Result = trialSend(ctx, o.Sinks[tr.Sink], s.d, red, o.SigningKey)
		}()
	}
	wg.Wait()
}

// trialRendered is a route rendered for a trial, with the links its
// templates saw and the object its dedup key names, if any.
type trialRendered struct {
	router.Delivery
	links map[string]router.Link
}

// trialDelivery renders a route as the worker would, with a trial id, and
// with the links the store has for its dedup key (none without lookup)
// and, for a rule with unless:, timer as .timer. The dedup key is
// rendered for show only: copyDelivery takes it off before a sink sees
// the delivery.
func trialDelivery(ctx context.Context, rt *rules.Runtime, rule *rules.Rule, route *rules.Route, view *router.View, lookup func(context.Context, string) (map[string]router.Link, error), timer map[string]any) (*trialRendered, error) {
	d := &trialRendered{Delivery: router.Delivery{ID: trialID(), Rule: rule.Name, Sink: route.Sink, Attempt: 1, Event: view.Data(), Fields: map[string]string{}}}
	if route.DedupKey != nil {
		s, err := route.DedupKey.Render(view.Data())
		if err != nil {
			return d, fmt.Errorf("render dedup_key: %w", err)
		}
		d.DedupKey = strings.TrimSpace(s)
		if d.DedupKey != "" && lookup != nil {
			if d.links, err = lookup(ctx, d.DedupKey); err != nil {
				return d, fmt.Errorf("look up the dedup key's links: %w", err)
			}
		}
	}
	data := view.Data()
	if route.UsesLinks {
		data = rt.WithLinks(data, d.links)
	}
	if timer != nil {
		// A copy: the view's data is shared by the event's routes.
		data = maps.Clone(data)
		data["timer"] = timer
	}
	for _, f := range route.Fields {
		s, err := f.Render(data)
		if err != nil {
			return d, fmt.Errorf("render %s: %w", f.Name(), err)
		}
		d.Fields[f.Name()] = s
	}
	return d, nil
}

// outcome says what a real delivery of the route would come to first, in
// the worker's order: its timer (ingest stores it waiting; the rest
// applies when it fires), its schedule, a silence, its cooldown, its
// group.
func outcome(ctx context.Context, rule *rules.Rule, route *rules.Route, view *router.View, src *rules.Source, o Options) (string, string) {
	now := o.Now()
	if rule.Unless != nil {
		return router.StatusWaiting, waitingWhy(rule, route, src, view, now)
	}
	if w := route.Window; w != nil && !w.Allows(now) {
		if route.DropClosed {
			return router.StatusSuppressed, "suppressed (" + w.Key() + ", when_closed: drop): " + w.Schedule.Describe(now)
		}
		next := w.Next(now)
		if next.IsZero() {
			return "deferred", "deferred (" + w.Key() + "): the schedule does not open within two years"
		}
		return "deferred", "deferred to " + next.In(w.Schedule.Location()).Format("Mon 2006-01-02 15:04") + " " + w.Schedule.Location().String() + " (" + w.Key() + ")"
	}
	if o.Silenced != nil {
		if s := o.Silenced(src.Name, view, rule.Name, route.Sink); s != nil {
			why := "silenced by " + s.ID + " (until " + s.EndsAt.UTC().Format("2006-01-02 15:04 UTC")
			if s.Comment != "" {
				why += ", " + strconv.Quote(s.Comment)
			}
			return router.StatusSilenced, why + ")"
		}
	}
	if cd := route.Cooldown; cd != nil && o.CooldownHolder != nil {
		if key, err := cd.Render(view.Data()); err == nil {
			key = strings.TrimSpace(key)
			if holder, until, err := o.CooldownHolder(ctx, route.Scope(rule.Name), key, now); err == nil && holder != "" {
				return router.StatusSuppressed, "suppressed by the cooldown of delivery " + holder + " (cooldown key " + key + ", until " + until.UTC().Format(time.RFC3339) + ")"
			}
		}
	}
	if g := rule.Group; g != nil {
		key, err := g.Key(src.Name, view)
		if err != nil {
			key = "(no key: " + err.Error() + ")"
		} else if key == "" {
			key = "(the rule's one group)"
		}
		return router.StatusGrouped, fmt.Sprintf("would join group %s (a new group flushes %s after its first event; one notification per %s at most)", key, g.Wait, g.Interval)
	}
	return "sent", ""
}

// action says what a real delivery of d would do to the object its dedup
// key names; looked says whether the store was asked.
func action(sr *rules.SinkRuntime, route *rules.Route, d *trialRendered, looked bool) string {
	id := d.links[route.Sink]["id"]
	var what string
	switch {
	case d.DedupKey == "":
		what = "deliver without a key (it rendered empty)"
	case id != "" && route.OnExisting == "skip":
		what = "skip: " + id + " exists (on_existing: skip)"
	case id == "" && route.OnMissing == "skip":
		what = "skip: the key has no object yet (on_missing: skip)"
	case route.OnExisting == "create":
		what = "create a new object (on_existing: create)"
	default:
		if p, ok := sr.Sink.(router.Planner); ok {
			what = p.Plan(d.Fields, id != "")
		} else if id != "" {
			what = "follow up on " + id
		} else {
			what = "create a new object"
		}
	}
	if !looked {
		what += " (no store was asked: the key is taken as new)"
	}
	return what
}

// copyDelivery gives each Deliver its own delivery, with a fresh id and
// without the dedup key: a trial must neither follow up on the object a
// key names nor leave a mark (a label, a correlation id) that a later real
// delivery with the key would take for its own.
func copyDelivery(d *router.Delivery) *router.Delivery {
	c := *d
	c.ID, c.DedupKey, c.RemoteID, c.RemoteLink = trialID(), "", "", nil
	c.Fields = make(map[string]string, len(d.Fields))
	for k, v := range d.Fields {
		c.Fields[k] = v
	}
	return &c
}

// trialID is the id of a trial's delivery: "trial-" marks it as one to
// whoever receives it.
func trialID() string { return "trial-" + randomid.New(10) }

// trialSend makes one real attempt, paced like the workers' (Slack's
// per-channel budget is shared with them), within the sink's timeout.
func trialSend(ctx context.Context, sr *rules.SinkRuntime, d *router.Delivery, red *redact.Redactor, signingKey func(context.Context, string) (*rsa.PrivateKey, error)) *TrialSendResult {
	if sr == nil || sr.Sink == nil || sr.Disabled {
		return &TrialSendResult{Error: "the sink is not running"}
	}
	ctx, cancel := context.WithTimeout(ctx, sr.Timeout)
	defer cancel()
	if router.IsSecured(sr.Sink) {
		if signingKey == nil {
			return &TrialSendResult{Error: "the sink is secured and its signing keys are in the router's store: run this trial through the admin API (POST /api/trial)"}
		}
		key, err := signingKey(ctx, sr.Name)
		if err != nil {
			return &TrialSendResult{Error: "not sent: no signing key: " + err.Error()}
		}
		d.SigningKey = key
	}
	if pc, ok := sr.Sink.(router.Paced); ok {
		if err := pc.Pace(ctx); err != nil {
			return &TrialSendResult{Error: "waiting for the sink's rate limit: " + err.Error()}
		}
	}
	res, err := sr.Sink.Deliver(ctx, d)
	out := &TrialSendResult{StatusCode: res.StatusCode, RemoteID: res.RemoteID}
	if err != nil {
		out.Error = red.Text(err.Error())
	}
	return out
}

// captureSinks are the config's sinks built by a Capturer, with what to
// redact from each one's requests.
type captureSinks struct {
	c         config.Capturer
	sinks     map[string]router.Sink
	errs      map[string]string
	redactors map[string]*redact.Redactor
}

// buildCaptureSinks builds the needed sinks of the config again with the
// capturer, from the same (expanded) YAML, so that each sink's own code
// renders the request. Sinks are cheap to build; a trial is rare.
func buildCaptureSinks(rt *rules.Runtime, c config.Capturer, needed map[string]bool) *captureSinks {
	cs := &captureSinks{c: c, sinks: map[string]router.Sink{}, errs: map[string]string{}, redactors: map[string]*redact.Redactor{}}
	for i := range rt.Config.Sinks {
		node := &rt.Config.Sinks[i]
		var name, kind string
		rest := &yaml.Node{Kind: yaml.MappingNode, Line: node.Line, Column: node.Column}
		for j := 0; j+1 < len(node.Content); j += 2 {
			k, v := node.Content[j], node.Content[j+1]
			switch {
			case k.Value == "name":
				name = v.Value
			case k.Value == "type":
				kind = v.Value
			case !config.SinkCommonKeys[k.Value]:
				rest.Content = append(rest.Content, k, v)
			}
		}
		sr := rt.Sinks[name]
		if sr == nil || sr.Disabled || !needed[name] {
			continue
		}
		cs.redactors[name] = redact.New(envValues(rest)...)
		s, err := c.Build(kind, name, rest)
		if err != nil {
			cs.errs[name] = "cannot build the sink to render its request: " + cs.redactors[name].Text(err.Error())
			continue
		}
		cs.sinks[name] = s
	}
	return cs
}

// render runs the capturing sink on d and returns the request it made,
// redacted, or why it made none.
func (cs *captureSinks) Render(ctx context.Context, sr *rules.SinkRuntime, d *router.Delivery) (*Request, string) {
	if sr.Kind == "log" {
		return nil, "" // no request: the fields are what it prints
	}
	if msg, ok := cs.errs[sr.Name]; ok {
		return nil, msg
	}
	s := cs.sinks[sr.Name]
	if s == nil {
		return nil, ""
	}
	cctx, captured := cs.c.Capture(ctx)
	if captured == nil {
		return nil, ""
	}
	cctx, cancel := context.WithTimeout(cctx, sr.Timeout)
	defer cancel()
	if router.IsSecured(s) {
		// The real key stays where it is: a stand-in signs, and the
		// signature is not shown.
		d.SigningKey = placeholderKey()
	}
	_, err := s.Deliver(cctx, d)
	red := cs.redactors[sr.Name]
	req := captured()
	if req == nil {
		if err != nil {
			// The sink refused before sending (a required field renders
			// empty, a value it cannot use): the real delivery would fail
			// the same way.
			return nil, red.Text(err.Error())
		}
		return nil, ""
	}
	return redactRequest(red, req), ""
}

// ---- admin API ----

// utf8Body is body as text for JSON: invalid UTF-8 would be mangled
// silently, so it is marked instead.
func utf8Body(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("(%d bytes of binary data)", len(b))
}
