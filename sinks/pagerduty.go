package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("pagerduty",
		// PagerDuty shows every field as plain text: nothing to escape.
		// subject is not required, as ticketFields would have it:
		// acknowledge and resolve events carry no summary, and a trigger
		// whose subject renders empty gets "{event} (hookroute rule
		// {rule})".
		[]router.FieldSpec{
			{Name: "subject"},   // payload.summary
			{Name: "body"},      // payload.custom_details.body
			{Name: "severity"},  // critical, error (the default), warning or info
			{Name: "action"},    // trigger (the default), acknowledge or resolve
			{Name: "source"},    // default "hookroute"
			{Name: "component"}, // and group and class: free text PagerDuty can filter on
			{Name: "group"},
			{Name: "class"},
		},
		func() pagerdutyConfig { return pagerdutyConfig{} },
		newPagerDutySink)
}

// pagerdutyConfig configures the PagerDuty sink, which sends Events API v2
// events to one service integration. The dedup_key of an event is the
// route's dedup key, or else the delivery id, so that retries and replays
// never open a second alert; a follow-up (the key seen before) sends the
// key PagerDuty answered, and PagerDuty applies it to the open alert:
// trigger again is absorbed, acknowledge and resolve change its state.
//
// Limits used: summary 1,024 runes and dedup_key 255 characters, as
// documented (a longer dedup key is replaced by its SHA-256); the body is
// cut to 65,536 runes, which keeps an event under the 512 KB payload limit
// even with every character JSON-escaped. Assumption [UNVERIFIED]: a 429
// carries no Retry-After, and PagerDuty asks for a backoff, so a 429 waits
// at least 30 seconds.
//
// A delivery's Link is the dedup key as "id" and "key", with no "url":
// the Events API answers no incident, only the key, and the incident's
// page is not known until PagerDuty has processed the event.
type pagerdutyConfig struct {
	// RoutingKey is the integration key of an Events API v2 integration
	// (32 characters), as ${VAR}.
	RoutingKey router.Secret `yaml:"routing_key"`
	// BaseURL replaces https://events.pagerduty.com (proxies, tests).
	BaseURL string `yaml:"base_url"`
}

const (
	pagerdutyAPIURL      = "https://events.pagerduty.com"
	pagerdutyMaxSummary  = 1024  // runes
	pagerdutyMaxDedupKey = 255   // bytes, to be safe with "characters"
	pagerdutyMaxBody     = 65536 // runes
	pagerdutySource      = "hookroute"
	pagerdutyMinWait     = 30 * time.Second
)

var (
	pagerdutyActions    = map[string]bool{"trigger": true, "acknowledge": true, "resolve": true}
	pagerdutySeverities = map[string]bool{"critical": true, "error": true, "warning": true, "info": true}
)

// pagerdutySink sends events to one integration.
type pagerdutySink struct {
	key    string
	url    *url.URL // {base_url}/v2/enqueue
	shown  string
	client *http.Client
	red    *redact.Redactor
}

var _ router.Sink = (*pagerdutySink)(nil)

func newPagerDutySink(r *Registry, _ string, c pagerdutyConfig) (*pagerdutySink, error) {
	var p configProblems
	switch key := c.RoutingKey.Reveal(); {
	case key == "":
		p.add("routing_key", "must be set")
	case strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		p.add("routing_key", "must be one word, without spaces") // never quote it
	}
	base, msg := ticketBaseURL(c.BaseURL, pagerdutyAPIURL)
	if msg != "" {
		p.add("base_url", "%s", msg)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	u := endpoint(base, "/v2/enqueue")
	return &pagerdutySink{key: c.RoutingKey.Reveal(), url: u, shown: showURL(u), client: r.Client, red: redact.New(c.RoutingKey.Reveal())}, nil
}

// pagerdutyEvent is an Events API v2 event; only a trigger has a payload.
type pagerdutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *pagerdutyPayload `json:"payload,omitempty"`
}

type pagerdutyPayload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"`
	Component     string            `json:"component,omitempty"`
	Group         string            `json:"group,omitempty"`
	Class         string            `json:"class,omitempty"`
	CustomDetails map[string]string `json:"custom_details,omitempty"`
}

// Deliver sends one event and returns its dedup key as the RemoteID.
func (s *pagerdutySink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	ev, err := s.event(d)
	if err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("pagerduty: %w", err))
	}
	req, err := jsonRequest(ctx, http.MethodPost, s.url, ev)
	if err != nil {
		return router.Result{}, fmt.Errorf("pagerduty: %w", err) // permanent, and without the key
	}
	code, body, err := send(s.client, req, s.red, s.shown)
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("pagerduty: %s: %w", ev.EventAction, pagerdutyError(code, body, err))
	}
	var ok struct {
		DedupKey string `json:"dedup_key"`
	}
	if json.Unmarshal(body, &ok) != nil || ok.DedupKey == "" {
		ok.DedupKey = ev.DedupKey // accepted all the same
	}
	return router.Result{StatusCode: code, RemoteID: ok.DedupKey, Link: newLink(ok.DedupKey, "key", ok.DedupKey)}, nil
}

// event renders d's fields into an event; an error is a problem with the
// route's templates, which no retry fixes.
func (s *pagerdutySink) event(d *router.Delivery) (*pagerdutyEvent, error) {
	field := func(name string) string { return strings.TrimSpace(d.Fields[name]) }
	action := strings.ToLower(field("action"))
	if action == "" {
		action = "trigger"
	}
	if !pagerdutyActions[action] {
		return nil, fmt.Errorf("action %q: want trigger, acknowledge or resolve", runes.Truncate(action, 40))
	}
	ev := &pagerdutyEvent{RoutingKey: s.key, EventAction: action, DedupKey: pagerdutyDedupKey(d)}
	if action != "trigger" {
		return ev, nil
	}
	severity := strings.ToLower(field("severity"))
	if severity == "" {
		severity = "error"
	}
	if !pagerdutySeverities[severity] {
		return nil, fmt.Errorf("severity %q: want critical, error, warning or info", runes.Truncate(severity, 40))
	}
	summary := field("subject")
	if summary == "" {
		summary = pagerdutyFallbackSummary(d)
	}
	summary = runes.Truncate(summary, pagerdutyMaxSummary)
	source := field("source")
	if source == "" {
		source = pagerdutySource
	}
	ev.Payload = &pagerdutyPayload{Summary: summary, Source: source, Severity: severity, Component: field("component"), Group: field("group"), Class: field("class")}
	if body := field("body"); body != "" {
		ev.Payload.CustomDetails = map[string]string{"body": runes.Truncate(body, pagerdutyMaxBody)}
	}
	return ev, nil
}

// pagerdutyFallbackSummary stands in for a subject that rendered empty:
// PagerDuty refuses a trigger without a summary, and a page with a plain
// summary beats a dead delivery.
func pagerdutyFallbackSummary(d *router.Delivery) string {
	if name, _ := d.Event["event"].(string); strings.TrimSpace(name) != "" {
		return strings.TrimSpace(name) + " (hookroute rule " + d.Rule + ")"
	}
	return "hookroute rule " + d.Rule
}

// pagerdutyDedupKey names the alert: the key PagerDuty answered before,
// else the route's dedup key, else the delivery id.
func pagerdutyDedupKey(d *router.Delivery) string {
	key := d.RemoteID
	if key == "" {
		key = d.DedupKey
	}
	if key == "" {
		key = d.ID
	}
	if len(key) > pagerdutyMaxDedupKey {
		sum := sha256.Sum256([]byte(key))
		key = "hookroute:" + hex.EncodeToString(sum[:])
	}
	return key
}

// pagerdutyError refines send's classification: a 429 waits at least
// pagerdutyMinWait, and a 400 says what PagerDuty found invalid.
func pagerdutyError(code int, body []byte, err error) error {
	switch code {
	case http.StatusTooManyRequests:
		inner := err
		var ra *router.RetryAfterError
		if errors.As(err, &ra) {
			inner = ra.Err
		}
		return &router.RetryAfterError{Err: inner, After: max(router.RetryAfterOf(err), pagerdutyMinWait)}
	case http.StatusBadRequest:
		// {"status": "invalid event", "message": "Event object is
		// invalid", "errors": ["Length of 'routing_key' is incorrect"]}
		var e struct {
			Status  string   `json:"status"`
			Message string   `json:"message"`
			Errors  []string `json:"errors"`
		}
		if json.Unmarshal(body, &e) == nil && (e.Status != "" || e.Message != "") {
			msg := strings.Trim(e.Status+": "+e.Message, ": ")
			if len(e.Errors) > 0 {
				msg += " (" + strings.Join(e.Errors, "; ") + ")"
			}
			return router.Permanent(&statusError{code: code, snippet: snippet([]byte(msg))})
		}
	}
	return err
}
