package sinks

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("zendesk",
		ticketFields(nil, // subject and body are plain text in Zendesk
			// requester is the end user's email address; without it the
			// ticket's requester is the agent the credentials belong to.
			router.FieldSpec{Name: "requester"},
			router.FieldSpec{Name: "requester_name"},
			// priority renders to low, normal, high or urgent (or nothing).
			router.FieldSpec{Name: "priority"},
			// tags is comma-separated.
			router.FieldSpec{Name: "tags"},
			// public renders to true or false: whether the comment is
			// public. Follow-ups default to an internal note (false); a
			// new ticket's first comment defaults to Zendesk's own
			// default (public).
			router.FieldSpec{Name: "public"},
		),
		func() zendeskConfig { return zendeskConfig{} },
		newZendeskSink)
}

// zendeskConfig configures the Zendesk sink, which opens a ticket through
// POST /api/v2/tickets and, when a later delivery has the same dedup key,
// adds a comment to it through PUT /api/v2/tickets/{id}. Creates carry an
// Idempotency-Key header (the delivery id), so retries and replays do not
// make a second ticket; external_id holds the dedup key (else the delivery
// id) for lookups. Comments have no idempotency key in Zendesk's API: a
// retry after a lost answer may add a comment twice.
//
// A delivery's Link is the ticket's id as "id" and "number", and as "url"
// the agent's page, https://{subdomain}.zendesk.com/agent/tickets/{id}
// (under base_url when there is no subdomain): the answer's own url is
// the API's, of no use to a person.
//
// Limits: subject is cut to 250 characters and the comment body to 64 KiB
// (both assumptions; Zendesk documents neither for the API). Rate limits
// answer 429 with Retry-After (not verified).
type zendeskConfig struct {
	// Subdomain is the account: acme for https://acme.zendesk.com. With
	// base_url it names only where agents open tickets.
	Subdomain string `yaml:"subdomain"`
	// Email is the agent whose API token Token is; tickets are submitted
	// as this agent.
	Email string `yaml:"email"`
	// Token is an API token, as ${VAR}, sent as HTTP Basic
	// "{email}/token:{token}".
	Token router.Secret `yaml:"token"`
	// OAuthToken is an OAuth access token, as ${VAR}, sent as Bearer;
	// instead of email and token.
	OAuthToken router.Secret `yaml:"oauth_token"`
	// BaseURL replaces https://{subdomain}.zendesk.com (proxies, tests).
	BaseURL string `yaml:"base_url"`
}

const (
	zendeskMaxSubject = 250      // runes (assumption)
	zendeskMaxBody    = 64 << 10 // bytes (assumption)
)

var (
	zendeskPriorities = map[string]bool{"low": true, "normal": true, "high": true, "urgent": true}
	deskSubdomain     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
)

func (c *zendeskConfig) validate() (*url.URL, error) {
	var p configProblems
	var base *url.URL
	switch {
	case c.Subdomain != "" && !deskSubdomain.MatchString(c.Subdomain):
		p.add("subdomain", "want the account's subdomain only, such as acme for acme.zendesk.com")
	case c.Subdomain == "" && c.BaseURL == "":
		p.add("subdomain", "must be set (or base_url)")
	default:
		var msg string
		if base, msg = ticketBaseURL(c.BaseURL, "https://"+c.Subdomain+".zendesk.com"); msg != "" {
			p.add("base_url", "%s", msg)
		}
	}
	switch {
	case (c.Token == "") == (c.OAuthToken == ""):
		p.add("token", "set exactly one of token (with email) and oauth_token")
	case c.Token != "":
		if !deskWord(c.Token.Reveal()) {
			p.add("token", "must be one word of printable ASCII") // never quote it
		}
		if c.Email == "" {
			p.add("email", "must be set with token")
		} else if !strings.Contains(c.Email, "@") || !deskWord(c.Email) || strings.Contains(c.Email, ":") {
			p.add("email", "want the agent's email address")
		}
	default:
		if !deskWord(c.OAuthToken.Reveal()) {
			p.add("oauth_token", "must be one word of printable ASCII")
		}
		if c.Email != "" {
			p.add("email", "applies to token only; an OAuth token names its user")
		}
	}
	return base, p.err()
}

// zendeskSink opens and comments on tickets in one Zendesk account.
type zendeskSink struct {
	base   *url.URL
	web    *url.URL // where agents open tickets
	shown  string
	auth   string // the Authorization header
	client *http.Client
	red    *redact.Redactor
}

var _ router.Sink = (*zendeskSink)(nil)

func newZendeskSink(r *Registry, _ string, c zendeskConfig) (*zendeskSink, error) {
	base, err := c.validate()
	if err != nil {
		return nil, err
	}
	s := &zendeskSink{base: base, web: siteRoot(c.Subdomain, ".zendesk.com", base), shown: showURL(base), client: r.Client}
	if c.Token != "" {
		basic := base64.StdEncoding.EncodeToString([]byte(c.Email + "/token:" + c.Token.Reveal()))
		s.auth = "Basic " + basic
		s.red = redact.New(c.Token.Reveal(), basic)
	} else {
		s.auth = "Bearer " + c.OAuthToken.Reveal()
		s.red = redact.New(c.OAuthToken.Reveal())
	}
	return s, nil
}

type zendeskTicket struct {
	Subject    string            `json:"subject,omitempty"`
	Comment    zendeskComment    `json:"comment"`
	Requester  *zendeskRequester `json:"requester,omitempty"`
	Priority   string            `json:"priority,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	ExternalID string            `json:"external_id,omitempty"`
}

type zendeskComment struct {
	Body   string `json:"body"`
	Public *bool  `json:"public,omitempty"`
}

type zendeskRequester struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// Deliver creates a ticket, or comments on d.RemoteID when it is set.
// Fields that cannot work (a priority Zendesk does not have) are permanent
// errors, and nothing is sent.
func (s *zendeskSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	public, set, err := deskBool(d.Fields, "public")
	if err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("zendesk: %w", err))
	}
	body := d.Fields["body"]
	if strings.TrimSpace(body) == "" {
		body = d.Fields["subject"] // Zendesk refuses an empty comment
	}
	if strings.TrimSpace(body) == "" {
		return router.Result{}, router.Permanent(errors.New("zendesk: body and subject rendered empty"))
	}
	comment := zendeskComment{Body: deskCut(body, zendeskMaxBody)}
	if set || d.RemoteID != "" {
		comment.Public = &public
	}
	if d.RemoteID != "" {
		return s.comment(ctx, d.RemoteID, comment)
	}
	t := zendeskTicket{
		Subject:    runes.Truncate(strings.TrimSpace(d.Fields["subject"]), zendeskMaxSubject),
		Comment:    comment,
		Priority:   strings.ToLower(strings.TrimSpace(d.Fields["priority"])),
		Tags:       splitList(d.Fields["tags"]),
		ExternalID: cmp.Or(d.DedupKey, d.ID),
	}
	if t.Subject == "" {
		return router.Result{}, router.Permanent(errors.New("zendesk: subject rendered empty"))
	}
	if t.Priority != "" && !zendeskPriorities[t.Priority] {
		return router.Result{}, router.Permanent(fmt.Errorf("zendesk: priority %q is not one of low, normal, high, urgent", runes.Truncate(t.Priority, 40)))
	}
	if email := strings.TrimSpace(d.Fields["requester"]); email != "" {
		t.Requester = &zendeskRequester{Email: email, Name: strings.TrimSpace(d.Fields["requester_name"])}
	}
	req, err := jsonRequest(ctx, http.MethodPost, endpoint(s.base, "/api/v2/tickets"), map[string]any{"ticket": t})
	if err != nil {
		return router.Result{}, fmt.Errorf("zendesk: %w", s.red.Err(err, s.shown))
	}
	req.Header.Set("Idempotency-Key", d.ID)
	code, answer, err := s.send(req)
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("zendesk: create ticket: %w", err)
	}
	id := deskFindID(answer, "ticket", "id")
	if id == "" {
		// Retrying is safe: the Idempotency-Key answers the same ticket.
		return router.Result{StatusCode: code}, fmt.Errorf("zendesk: create ticket: HTTP %d without a ticket id in the answer", code)
	}
	return router.Result{StatusCode: code, RemoteID: id, Link: s.link(id)}, nil
}

// link describes ticket id from config alone: Zendesk answers no page
// URL, and a ticket's agent page follows from its id.
func (s *zendeskSink) link(id string) router.Link {
	return newLink(id, "number", id, "url", webPage(s.web, "agent", "tickets", id))
}

// comment adds c to ticket id.
func (s *zendeskSink) comment(ctx context.Context, id string, c zendeskComment) (router.Result, error) {
	if !deskDigits(id) {
		return router.Result{}, router.Permanent(fmt.Errorf("zendesk: remote id %q is not a ticket id", runes.Truncate(id, 40)))
	}
	u := endpoint(s.base, "/api/v2/tickets/"+id)
	req, err := jsonRequest(ctx, http.MethodPut, u, map[string]any{"ticket": map[string]any{"comment": c}})
	if err != nil {
		return router.Result{}, fmt.Errorf("zendesk: %w", s.red.Err(err, s.shown))
	}
	code, _, err := s.send(req)
	if err != nil {
		return router.Result{StatusCode: code, RemoteID: id}, fmt.Errorf("zendesk: comment on ticket %s: %w", id, err)
	}
	return router.Result{StatusCode: code, RemoteID: id, Link: s.link(id)}, nil
}

// send authenticates req, sends it and puts Zendesk's error message in
// place of the raw body.
func (s *zendeskSink) send(req *http.Request) (int, []byte, error) {
	req.Header.Set("Authorization", s.auth)
	code, body, err := send(s.client, req, s.red, s.shown)
	deskDetail(err, zendeskMessage(body))
	return code, body, err
}

// zendeskMessage reads Zendesk's error shapes: {"error": "RecordInvalid",
// "description": "...", "details": {"requester": [{"description": "..."}]}},
// {"error": {"title": ..., "message": ...}} and {"errors": [{"title": ...,
// "detail": ...}]}.
func zendeskMessage(body []byte) string {
	var e struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"description"`
		Details     map[string][]struct {
			Description string `json:"description"`
		} `json:"details"`
		Errors []struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var parts []string
	var name string
	var obj struct{ Title, Message string }
	if json.Unmarshal(e.Error, &name) == nil {
		parts = append(parts, name)
	} else if json.Unmarshal(e.Error, &obj) == nil {
		parts = append(parts, obj.Title, obj.Message)
	}
	parts = append(parts, e.Description)
	for _, k := range slices.Sorted(maps.Keys(e.Details)) {
		for _, d := range e.Details[k] {
			parts = append(parts, d.Description)
		}
	}
	for _, x := range e.Errors {
		parts = append(parts, x.Title, x.Detail)
	}
	return deskJoin(parts)
}

// Helpers shared by the helpdesk sinks (zendesk, freshdesk, zohodesk).

// deskJoin joins the non-empty parts of a vendor's error message.
func deskJoin(parts []string) string {
	out := parts[:0:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ": ")
}

// deskDetail replaces the raw answer quoted by a *statusError with the
// vendor's message, when one was found (the body is already redacted).
func deskDetail(err error, msg string) {
	var se *statusError
	if msg != "" && errors.As(err, &se) {
		se.snippet = snippet([]byte(msg))
	}
}

// deskBool reads a route field that renders to true, false or nothing.
func deskBool(fields map[string]string, name string) (v, set bool, err error) {
	raw := strings.TrimSpace(fields[name])
	switch strings.ToLower(raw) {
	case "":
		return false, false, nil
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, false, fmt.Errorf("%s rendered %q; want true or false", name, runes.Truncate(raw, 40))
}

// deskFindID returns the id at path (such as "ticket", "id") in a JSON
// answer, if it is a number or a string of digits. It reads the answer as
// a stream: helpdesks echo the whole ticket, description included, so an
// answer may be cut off at send's read limit, and an id that comes before
// the cut (as Zendesk's and Freshdesk's do) is still found.
func deskFindID(answer []byte, path ...string) string {
	dec := json.NewDecoder(bytes.NewReader(answer))
	dec.UseNumber()
	for _, key := range path {
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return ""
		}
		for {
			t, err := dec.Token()
			k, ok := t.(string)
			if err != nil || !ok {
				return "" // the end of the object: no such key
			}
			if k == key {
				break
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return ""
			}
		}
	}
	t, _ := dec.Token()
	var id string
	switch v := t.(type) {
	case string:
		id = v
	case json.Number:
		id = v.String()
	}
	if !deskDigits(id) {
		return ""
	}
	return id
}

// deskScalars returns the strings and numbers that the top-level object
// of a JSON answer holds under keys. Like deskFindID it reads the answer
// as a stream, so what comes before a cut is still found. Values that
// could not be a ticket's number or page (longer than maxScalar, or with
// spaces or control characters) are left out.
func deskScalars(answer []byte, keys ...string) map[string]string {
	out := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(answer))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return out
	}
	for dec.More() {
		t, err := dec.Token()
		k, ok := t.(string)
		if err != nil || !ok {
			return out
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return out // cut off, or not JSON
		}
		if !slices.Contains(keys, k) {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		}
		if len(s) <= maxScalar && deskWord(s) {
			out[k] = s
		}
	}
	return out
}

// maxScalar bounds a value deskScalars keeps: room for a long page URL,
// none for a description.
const maxScalar = 2048

// deskDigits reports whether id is a non-empty run of ASCII digits: every
// ticket id these vendors hand out.
func deskDigits(id string) bool {
	if id == "" || len(id) > 40 {
		return false
	}
	for _, r := range id {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// deskWord reports whether s can go in a header as one token: printable
// ASCII without spaces.
func deskWord(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return false
		}
	}
	return s != ""
}

// deskCut cuts s to at most max bytes, at a rune boundary, marking the cut
// with "…".
func deskCut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
