package fakeapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// PagerDuty fakes the PagerDuty Events API v2 for one integration, from
// PagerDuty's documentation:
//
//   - POST /v2/enqueue with {"routing_key", "event_action", "dedup_key",
//     "payload": {"summary", "source", "severity", ...}} answers 202
//     {"status": "success", "message": "Event processed", "dedup_key"}.
//     A trigger without dedup_key gets a new one.
//   - There is no auth header: a routing_key other than the integration's
//     answers 400 {"status": "invalid event", "message": "Event object is
//     invalid", "errors": [...]}, as does a missing or invalid field
//     (event_action; for a trigger, payload.summary of at most 1,024
//     characters, payload.source, payload.severity critical, error,
//     warning or info; dedup_key of at most 255 characters).
//   - A trigger whose dedup_key names an open (triggered or acknowledged)
//     incident is absorbed by it; after a resolve the same key opens a new
//     incident. Acknowledge and resolve change an open incident's state
//     and are dropped, still with 202, when none is open.
//
// The real API is asynchronous and its error texts were not all seen;
// the fake applies events at once, with texts close to PagerDuty's.
type PagerDuty struct {
	key string

	mu        sync.Mutex
	faults    []pagerdutyFault
	incidents []*PagerDutyIncident
	open      map[string]*PagerDutyIncident // by dedup key
	requests  []PagerDutyRequest
}

// PagerDutyIncident is an alert the fake opened, with every event applied
// to it, its trigger first.
type PagerDutyIncident struct {
	DedupKey string
	State    string // triggered, acknowledged or resolved
	Summary  string // the first trigger's
	Severity string
	Events   []PagerDutyEvent
}

// PagerDutyEvent is an accepted event.
type PagerDutyEvent struct {
	Action   string // trigger, acknowledge or resolve
	DedupKey string
	// Payload is the trigger's payload; nil for acknowledge and resolve.
	Payload *PagerDutyPayload
}

// PagerDutyPayload is a trigger's payload.
type PagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp"`
	Component     string         `json:"component"`
	Group         string         `json:"group"`
	Class         string         `json:"class"`
	CustomDetails map[string]any `json:"custom_details"`
}

// PagerDutyRequest is a request the fake received.
type PagerDutyRequest struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

type pagerdutyFault struct {
	n          int
	status     int
	retryAfter string
}

const (
	pagerdutyMaxSummary  = 1024
	pagerdutyMaxDedupKey = 255
	pagerdutyMaxRequest  = 512 << 10
)

// NewPagerDuty returns a fake integration whose integration key is
// routingKey.
func NewPagerDuty(routingKey string) *PagerDuty {
	return &PagerDuty{key: routingKey, open: map[string]*PagerDutyIncident{}}
}

// Fail makes the next n requests answer status, with a Retry-After header
// when retryAfter is not empty (PagerDuty sends none), before any other
// check.
func (p *PagerDuty) Fail(n, status int, retryAfter string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > 0 {
		p.faults = append(p.faults, pagerdutyFault{n: n, status: status, retryAfter: retryAfter})
	}
}

// Incident returns a copy of the latest incident opened for dedupKey.
func (p *PagerDuty) Incident(dedupKey string) (PagerDutyIncident, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.incidents) - 1; i >= 0; i-- {
		if p.incidents[i].DedupKey == dedupKey {
			return p.incidents[i].clone(), true
		}
	}
	return PagerDutyIncident{}, false
}

// Incidents returns copies of every incident opened, oldest first.
func (p *PagerDuty) Incidents() []PagerDutyIncident {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PagerDutyIncident, len(p.incidents))
	for i, in := range p.incidents {
		out[i] = in.clone()
	}
	return out
}

// Requests returns copies of the requests received, oldest first.
func (p *PagerDuty) Requests() []PagerDutyRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PagerDutyRequest, len(p.requests))
	for i, r := range p.requests {
		out[i] = PagerDutyRequest{Method: r.Method, Path: r.Path, Header: r.Header.Clone(), Body: slices.Clone(r.Body)}
	}
	return out
}

func (in *PagerDutyIncident) clone() PagerDutyIncident {
	c := *in
	c.Events = slices.Clone(in.Events)
	for i, ev := range c.Events {
		if ev.Payload != nil {
			pl := *ev.Payload
			pl.CustomDetails = maps.Clone(pl.CustomDetails)
			c.Events[i].Payload = &pl
		}
	}
	return c
}

// ServeHTTP implements http.Handler.
func (p *PagerDuty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, pagerdutyMaxRequest+1))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, PagerDutyRequest{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body})
	if len(p.faults) > 0 {
		f := p.faults[0]
		if p.faults[0].n--; p.faults[0].n == 0 {
			p.faults = p.faults[1:]
		}
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		status := "error"
		if f.status == http.StatusTooManyRequests {
			status = "throttle event"
		}
		pagerdutyJSON(w, f.status, map[string]any{"status": status, "message": http.StatusText(f.status)})
		return
	}
	switch {
	case r.URL.Path != "/v2/enqueue":
		pagerdutyJSON(w, http.StatusNotFound, map[string]any{"status": "not found", "message": "Not Found"})
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		pagerdutyJSON(w, http.StatusMethodNotAllowed, map[string]any{"status": "error", "message": "Method Not Allowed"})
	case len(body) > pagerdutyMaxRequest:
		pagerdutyJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"status": "error", "message": "Request entity too large"})
	default:
		p.enqueue(w, body)
	}
}

func (p *PagerDuty) enqueue(w http.ResponseWriter, body []byte) {
	var in struct {
		RoutingKey  string            `json:"routing_key"`
		EventAction string            `json:"event_action"`
		DedupKey    string            `json:"dedup_key"`
		Payload     *PagerDutyPayload `json:"payload"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		pagerdutyInvalid(w, "Invalid JSON")
		return
	}
	if problems := p.check(in.RoutingKey, in.EventAction, in.DedupKey, in.Payload); len(problems) > 0 {
		pagerdutyInvalid(w, problems...)
		return
	}
	ev := PagerDutyEvent{Action: in.EventAction, DedupKey: in.DedupKey}
	if ev.Action == "trigger" {
		ev.Payload = in.Payload
		if ev.DedupKey == "" {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			ev.DedupKey = hex.EncodeToString(b)
		}
	}
	p.apply(ev)
	pagerdutyJSON(w, http.StatusAccepted, map[string]any{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
}

// check lists what is wrong with an event, as PagerDuty's errors do.
func (p *PagerDuty) check(key, action, dedupKey string, pl *PagerDutyPayload) []string {
	var out []string
	switch {
	case key == p.key && key != "":
	case len(key) != 32:
		out = append(out, "Length of 'routing_key' is incorrect (should be 32 characters)")
	default:
		out = append(out, "'routing_key' is invalid")
	}
	switch action {
	case "trigger":
		switch {
		case pl == nil:
			out = append(out, "'payload' is missing or blank")
		default:
			if strings.TrimSpace(pl.Summary) == "" {
				out = append(out, "'payload.summary' is missing or blank")
			} else if utf8.RuneCountInString(pl.Summary) > pagerdutyMaxSummary {
				out = append(out, "'payload.summary' is too long (maximum is 1024 characters)")
			}
			if strings.TrimSpace(pl.Source) == "" {
				out = append(out, "'payload.source' is missing or blank")
			}
			if !slices.Contains([]string{"critical", "error", "warning", "info"}, pl.Severity) {
				out = append(out, "'payload.severity' is invalid (must be one of critical, error, warning, info)")
			}
		}
	case "acknowledge", "resolve":
		if dedupKey == "" {
			out = append(out, "'dedup_key' is missing or blank")
		}
	default:
		out = append(out, "'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
	}
	if utf8.RuneCountInString(dedupKey) > pagerdutyMaxDedupKey {
		out = append(out, "'dedup_key' is too long (maximum is 255 characters)")
	}
	return out
}

// apply updates the incidents; the lock is held.
func (p *PagerDuty) apply(ev PagerDutyEvent) {
	in := p.open[ev.DedupKey]
	switch {
	case in == nil && ev.Action != "trigger":
		return // nothing open: dropped
	case in == nil:
		in = &PagerDutyIncident{DedupKey: ev.DedupKey, State: "triggered", Summary: ev.Payload.Summary, Severity: ev.Payload.Severity}
		p.incidents = append(p.incidents, in)
		p.open[ev.DedupKey] = in
	case ev.Action == "acknowledge":
		in.State = "acknowledged"
	case ev.Action == "resolve":
		in.State = "resolved"
		delete(p.open, ev.DedupKey)
	}
	in.Events = append(in.Events, ev)
}

func pagerdutyInvalid(w http.ResponseWriter, errs ...string) {
	pagerdutyJSON(w, http.StatusBadRequest, map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": errs})
}

func pagerdutyJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
