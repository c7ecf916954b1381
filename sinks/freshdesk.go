package sinks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("freshdesk",
		ticketFields(escapeHTML, // body becomes the HTML description
			// requester is the end user's email address; Freshdesk needs
			// one on every ticket.
			router.FieldSpec{Name: "requester", Required: true},
			router.FieldSpec{Name: "requester_name"},
			// priority renders to low, medium, high or urgent, or 1–4.
			router.FieldSpec{Name: "priority"},
			// tags is comma-separated.
			router.FieldSpec{Name: "tags"},
			// public renders to true or false: whether a follow-up note is
			// public (default false, a private note).
			router.FieldSpec{Name: "public"},
		),
		func() freshdeskConfig { return freshdeskConfig{} },
		newFreshdeskSink)
}

// freshdeskConfig configures the Freshdesk sink, which opens an Open
// ticket through POST /api/v2/tickets and, when a later delivery has the
// same dedup key, adds a note to it through POST
// /api/v2/tickets/{id}/notes.
//
// Freshdesk has no idempotency key: what keeps one event from opening two
// tickets is the router (one delivery per dedup key at a time, and the
// remote id it stores). A create whose answer is lost (a timeout after
// Freshdesk accepted it) is retried and may open a second ticket.
//
// A delivery's Link is the ticket's id as "id" and "number", and as "url"
// the agent's page, https://{domain}.freshdesk.com/a/tickets/{id} (under
// base_url when there is no domain), which Freshdesk's answers do not
// give.
//
// Limits: subject is cut to 255 characters and the description or note to
// 64 KiB (assumptions; Freshdesk documents neither). Auth is HTTP Basic
// with the API key as user and X as password (unverified, but what
// Freshdesk's examples show).
type freshdeskConfig struct {
	// Domain is the helpdesk: acme for https://acme.freshdesk.com. With
	// base_url it names only where agents open tickets.
	Domain string `yaml:"domain"`
	// APIKey is an agent's API key, as ${VAR}.
	APIKey router.Secret `yaml:"api_key"`
	// BaseURL replaces https://{domain}.freshdesk.com (proxies, tests).
	BaseURL string `yaml:"base_url"`
}

const (
	freshdeskMaxSubject = 255      // runes (assumption)
	freshdeskMaxBody    = 64 << 10 // bytes of HTML (assumption)
	freshdeskOpen       = 2        // ticket status Open
)

var freshdeskPriorities = map[string]int{"low": 1, "medium": 2, "high": 3, "urgent": 4, "1": 1, "2": 2, "3": 3, "4": 4}

func (c *freshdeskConfig) validate() (*url.URL, error) {
	var p configProblems
	var base *url.URL
	switch {
	case c.Domain != "" && !deskSubdomain.MatchString(c.Domain):
		p.add("domain", "want the helpdesk's name only, such as acme for acme.freshdesk.com")
	case c.Domain == "" && c.BaseURL == "":
		p.add("domain", "must be set (or base_url)")
	default:
		var msg string
		if base, msg = ticketBaseURL(c.BaseURL, "https://"+c.Domain+".freshdesk.com"); msg != "" {
			p.add("base_url", "%s", msg)
		}
	}
	if c.APIKey == "" {
		p.add("api_key", "must be set")
	} else if !deskWord(c.APIKey.Reveal()) || strings.Contains(c.APIKey.Reveal(), ":") {
		p.add("api_key", "must be one word of printable ASCII, without ':'") // never quote it
	}
	return base, p.err()
}

// freshdeskSink opens and annotates tickets in one Freshdesk helpdesk.
type freshdeskSink struct {
	base   *url.URL
	web    *url.URL // where agents open tickets
	shown  string
	auth   string
	client *http.Client
	red    *redact.Redactor
}

var _ router.Sink = (*freshdeskSink)(nil)

func newFreshdeskSink(r *Registry, _ string, c freshdeskConfig) (*freshdeskSink, error) {
	base, err := c.validate()
	if err != nil {
		return nil, err
	}
	basic := base64.StdEncoding.EncodeToString([]byte(c.APIKey.Reveal() + ":X"))
	return &freshdeskSink{base: base, web: siteRoot(c.Domain, ".freshdesk.com", base), shown: showURL(base), auth: "Basic " + basic, client: r.Client,
		red: redact.New(c.APIKey.Reveal(), basic)}, nil
}

type freshdeskTicket struct {
	Subject     string   `json:"subject"`
	Description string   `json:"description"`
	Email       string   `json:"email"`
	Name        string   `json:"name,omitempty"`
	Priority    int      `json:"priority,omitempty"`
	Status      int      `json:"status"`
	Tags        []string `json:"tags,omitempty"`
}

// Deliver creates a ticket, or adds a note to d.RemoteID when it is set.
// A missing requester or an unknown priority is a permanent error, and
// nothing is sent.
func (s *freshdeskSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	public, _, err := deskBool(d.Fields, "public")
	if err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("freshdesk: %w", err))
	}
	body := d.Fields["body"]
	if strings.TrimSpace(body) == "" {
		body = escapeHTML(d.Fields["subject"]) // Freshdesk needs a description
	}
	if strings.TrimSpace(body) == "" {
		return router.Result{}, router.Permanent(errors.New("freshdesk: body and subject rendered empty"))
	}
	html := deskHTML(body, freshdeskMaxBody)
	if d.RemoteID != "" {
		return s.note(ctx, d.RemoteID, html, !public)
	}
	t := freshdeskTicket{
		Subject:     runes.Truncate(strings.TrimSpace(d.Fields["subject"]), freshdeskMaxSubject),
		Description: html,
		Email:       strings.TrimSpace(d.Fields["requester"]),
		Name:        strings.TrimSpace(d.Fields["requester_name"]),
		Status:      freshdeskOpen,
		Tags:        splitList(d.Fields["tags"]),
	}
	switch {
	case t.Subject == "":
		return router.Result{}, router.Permanent(errors.New("freshdesk: subject rendered empty"))
	case t.Email == "":
		return router.Result{}, router.Permanent(errors.New("freshdesk needs a requester: the requester field rendered empty"))
	}
	if p := strings.ToLower(strings.TrimSpace(d.Fields["priority"])); p != "" {
		if t.Priority = freshdeskPriorities[p]; t.Priority == 0 {
			return router.Result{}, router.Permanent(fmt.Errorf("freshdesk: priority %q is not one of low, medium, high, urgent or 1–4", runes.Truncate(p, 40)))
		}
	}
	code, answer, err := s.post(ctx, "/api/v2/tickets", t)
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("freshdesk: create ticket: %w", err)
	}
	id := deskFindID(answer, "id")
	if id == "" {
		// Not retried: without an idempotency key a retry would open a
		// second ticket.
		return router.Result{StatusCode: code}, router.Permanent(fmt.Errorf("freshdesk: create ticket: HTTP %d without a ticket id in the answer (a ticket may have been created)", code))
	}
	return router.Result{StatusCode: code, RemoteID: id, Link: s.link(id)}, nil
}

// link describes ticket id from config alone: Freshdesk answers no page
// URL, and a ticket's agent page follows from its id.
func (s *freshdeskSink) link(id string) router.Link {
	return newLink(id, "number", id, "url", webPage(s.web, "a", "tickets", id))
}

// note adds an HTML note to ticket id.
func (s *freshdeskSink) note(ctx context.Context, id, html string, private bool) (router.Result, error) {
	if !deskDigits(id) {
		return router.Result{}, router.Permanent(fmt.Errorf("freshdesk: remote id %q is not a ticket id", runes.Truncate(id, 40)))
	}
	code, _, err := s.post(ctx, "/api/v2/tickets/"+id+"/notes", map[string]any{"body": html, "private": private})
	if err != nil {
		return router.Result{StatusCode: code, RemoteID: id}, fmt.Errorf("freshdesk: add note to ticket %s: %w", id, err)
	}
	return router.Result{StatusCode: code, RemoteID: id, Link: s.link(id)}, nil
}

// post sends payload and puts Freshdesk's error message in place of the
// raw answer.
func (s *freshdeskSink) post(ctx context.Context, path string, payload any) (int, []byte, error) {
	req, err := jsonRequest(ctx, http.MethodPost, endpoint(s.base, path), payload)
	if err != nil {
		return 0, nil, s.red.Err(err, s.shown)
	}
	req.Header.Set("Authorization", s.auth)
	code, body, err := send(s.client, req, s.red, s.shown)
	deskDetail(err, freshdeskMessage(body))
	return code, body, err
}

// freshdeskMessage reads Freshdesk's error shapes: {"description":
// "Validation failed", "errors": [{"field": "email", "message": "...",
// "code": "invalid_value"}]} and {"code": "...", "message": "..."}.
func freshdeskMessage(body []byte) string {
	var e struct {
		Description string `json:"description"`
		Code        string `json:"code"`
		Message     string `json:"message"`
		Errors      []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	parts := []string{e.Description, e.Code, e.Message}
	for _, x := range e.Errors {
		parts = append(parts, deskJoin([]string{x.Field, x.Message}))
	}
	return deskJoin(parts)
}

// deskHTML turns text already escaped for HTML into a description: line
// breaks become <br>. It is cut to max bytes without leaving half a tag or
// entity.
func deskHTML(s string, max int) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "<br>")
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	s = s[:cut]
	if i := strings.LastIndexAny(s, "<&"); i >= 0 && !strings.ContainsAny(s[i:], ">;") {
		s = s[:i]
	}
	return s + "…"
}
