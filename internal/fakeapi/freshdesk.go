package fakeapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Freshdesk fakes the ticket endpoints of the Freshdesk API v2, from
// Freshdesk's documentation:
//
//   - POST /api/v2/tickets creates a ticket: subject, description (HTML)
//     and a requester (email here) are required, status is 2–5 (Open,
//     Pending, Resolved, Closed; default 2), priority 1–4 (Low to Urgent;
//     default 1). It answers 201 with the ticket ({"id": 1, ...}).
//   - POST /api/v2/tickets/{id}/notes with {"body": html, "private": bool}
//     adds a note (private unless "private": false) and answers 201; an
//     unknown ticket answers 404.
//   - Auth is HTTP Basic with the API key as user and any password
//     (conventionally X); anything else answers 401
//     {"code": "invalid_credentials", "message": ...}.
//   - Validation errors answer 400 {"description": "Validation failed",
//     "errors": [{"field": ..., "message": ..., "code": ...}]}.
//   - Every answer carries X-RateLimit-Total and X-RateLimit-Remaining.
//
// Freshdesk has no idempotency key: the same request twice makes two
// tickets, here as there.
type Freshdesk struct {
	apiKey string

	mu       sync.Mutex
	nextID   int64
	nextNote int64
	tickets  []*FreshdeskTicket
	faults   deskFaults
}

// FreshdeskTicket is a ticket the fake holds.
type FreshdeskTicket struct {
	ID          int64
	Subject     string
	Description string // HTML, as sent
	Email       string
	Name        string
	Priority    int
	Status      int
	Tags        []string
	Notes       []FreshdeskNote
}

// FreshdeskNote is a note on a ticket.
type FreshdeskNote struct {
	ID      int64
	Body    string // HTML, as sent
	Private bool
}

// NewFreshdesk returns a fake account that accepts apiKey.
func NewFreshdesk(apiKey string) *Freshdesk {
	return &Freshdesk{apiKey: apiKey, nextID: 1, nextNote: 43000000001}
}

// Fail makes the next n requests answer status, with a Retry-After header
// when retryAfter is not empty, before any other check.
func (f *Freshdesk) Fail(n, status int, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.set(n, status, retryAfter)
}

// Tickets returns copies of the tickets created, oldest first.
func (f *Freshdesk) Tickets() []FreshdeskTicket {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FreshdeskTicket, len(f.tickets))
	for i, t := range f.tickets {
		out[i] = *t
		out[i].Tags = slices.Clone(t.Tags)
		out[i].Notes = slices.Clone(t.Notes)
	}
	return out
}

// freshdeskRateLimit is the per-minute budget the fake advertises (the
// Growth plan's).
const freshdeskRateLimit = 200

// ServeHTTP implements http.Handler.
func (f *Freshdesk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("X-RateLimit-Total", strconv.Itoa(freshdeskRateLimit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(freshdeskRateLimit-1))
	if status, after, ok := f.faults.next(); ok {
		if status == http.StatusTooManyRequests {
			w.Header().Set("X-RateLimit-Remaining", "0")
		}
		deskFault(w, status, after, map[string]any{"code": strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")), "message": http.StatusText(status)})
		return
	}
	if user, _, ok := r.BasicAuth(); !ok || user != f.apiKey || f.apiKey == "" {
		deskJSON(w, http.StatusUnauthorized, map[string]any{"code": "invalid_credentials", "message": "You have to be logged in to perform this action."})
		return
	}
	f.route(w, r)
}

// route answers an authorized request: a new ticket, or a note on one; the
// lock is held.
func (f *Freshdesk) route(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v2/tickets")
	id, isNotes := strings.CutSuffix(strings.TrimPrefix(rest, "/"), "/notes")
	switch {
	case ok && rest == "" && r.Method == http.MethodPost:
		f.create(w, r)
	case ok && isNotes && id != "" && !strings.Contains(id, "/") && r.Method == http.MethodPost:
		f.note(w, r, id)
	case ok && (rest == "" || isNotes):
		w.Header().Set("Allow", "POST")
		deskJSON(w, http.StatusMethodNotAllowed, map[string]any{"code": "method_not_allowed", "message": "Method not allowed"})
	default:
		deskJSON(w, http.StatusNotFound, map[string]any{"code": "invalid_url", "message": "The URL is not valid"})
	}
}

type freshdeskField struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

func freshdeskInvalid(w http.ResponseWriter, errs []freshdeskField) {
	deskJSON(w, http.StatusBadRequest, map[string]any{"description": "Validation failed", "errors": errs})
}

// freshdeskNewTicket is the body of a create.
type freshdeskNewTicket struct {
	Subject     *string  `json:"subject"`
	Description *string  `json:"description"`
	Email       string   `json:"email"`
	Name        string   `json:"name"`
	Priority    *int     `json:"priority"`
	Status      *int     `json:"status"`
	Tags        []string `json:"tags"`
}

func (f *Freshdesk) create(w http.ResponseWriter, r *http.Request) {
	var in freshdeskNewTicket
	raw, err := deskRead(r)
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		freshdeskInvalid(w, []freshdeskField{{Field: "", Message: err.Error(), Code: "invalid_json"}})
		return
	}
	priority, status, errs := in.validate()
	if len(errs) > 0 {
		freshdeskInvalid(w, errs)
		return
	}
	t := &FreshdeskTicket{ID: f.nextID, Subject: *in.Subject, Description: *in.Description, Email: in.Email, Name: in.Name,
		Priority: priority, Status: status, Tags: in.Tags}
	f.nextID++
	f.tickets = append(f.tickets, t)
	writeFreshdeskTicket(w, t)
}

// validate checks a create as Freshdesk does, and returns its priority and
// status, which default to low and open.
func (in *freshdeskNewTicket) validate() (priority, status int, errs []freshdeskField) {
	if in.Subject == nil || strings.TrimSpace(*in.Subject) == "" {
		errs = append(errs, freshdeskField{"subject", "It should be a/an String", "missing_field"})
	}
	if in.Description == nil || strings.TrimSpace(*in.Description) == "" {
		errs = append(errs, freshdeskField{"description", "It should be a/an String", "missing_field"})
	}
	switch {
	case in.Email == "":
		errs = append(errs, freshdeskField{"requester_id", "Please fill at least 1 of requester_id, phone, email, twitter_id, facebook_id, unique_external_id fields", "missing_field"})
	case !strings.Contains(in.Email, "@"):
		errs = append(errs, freshdeskField{"email", "It should be a valid email address", "invalid_value"})
	}
	priority, status = 1, 2
	if in.Priority != nil {
		priority = *in.Priority
	}
	if in.Status != nil {
		status = *in.Status
	}
	if priority < 1 || priority > 4 {
		errs = append(errs, freshdeskField{"priority", "It should be one of these values: '1,2,3,4'", "invalid_value"})
	}
	if status < 2 || status > 5 {
		errs = append(errs, freshdeskField{"status", "It should be one of these values: '2,3,4,5'", "invalid_value"})
	}
	return priority, status, errs
}

// writeFreshdeskTicket answers a create with the new ticket.
func writeFreshdeskTicket(w http.ResponseWriter, t *FreshdeskTicket) {
	// Freshdesk's answers list id before the description.
	type ticket struct {
		CCEmails        []string `json:"cc_emails"`
		FwdEmails       []string `json:"fwd_emails"`
		ReplyCCEmails   []string `json:"reply_cc_emails"`
		Priority        int      `json:"priority"`
		RequesterID     int64    `json:"requester_id"`
		Source          int      `json:"source"`
		Status          int      `json:"status"`
		Subject         string   `json:"subject"`
		ID              int64    `json:"id"`
		Type            any      `json:"type"`
		DueBy           string   `json:"due_by"`
		FrDueBy         string   `json:"fr_due_by"`
		Description     string   `json:"description"`
		DescriptionText string   `json:"description_text"`
		CreatedAt       string   `json:"created_at"`
		UpdatedAt       string   `json:"updated_at"`
		Tags            []string `json:"tags"`
	}
	now := time.Now().UTC().Format(time.RFC3339)
	deskJSON(w, http.StatusCreated, ticket{
		CCEmails: []string{}, FwdEmails: []string{}, ReplyCCEmails: []string{}, Priority: t.Priority,
		RequesterID: 43000000000 + t.ID, Source: 2, Status: t.Status, Subject: t.Subject, ID: t.ID,
		DueBy: now, FrDueBy: now, Description: t.Description, DescriptionText: freshdeskText(t.Description),
		CreatedAt: now, UpdatedAt: now, Tags: deskList(t.Tags),
	})
}

func (f *Freshdesk) note(w http.ResponseWriter, r *http.Request, rawID string) {
	id, err := strconv.ParseInt(rawID, 10, 64)
	var t *FreshdeskTicket
	if err == nil {
		for _, c := range f.tickets {
			if c.ID == id {
				t = c
			}
		}
	}
	if t == nil {
		w.WriteHeader(http.StatusNotFound) // Freshdesk answers an unknown ticket with an empty 404
		return
	}
	var in struct {
		Body    *string `json:"body"`
		Private *bool   `json:"private"`
	}
	raw, err := deskRead(r)
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		freshdeskInvalid(w, []freshdeskField{{Field: "", Message: err.Error(), Code: "invalid_json"}})
		return
	}
	if in.Body == nil || strings.TrimSpace(*in.Body) == "" {
		freshdeskInvalid(w, []freshdeskField{{"body", "It should be a/an String", "missing_field"}})
		return
	}
	n := FreshdeskNote{ID: f.nextNote, Body: *in.Body, Private: in.Private == nil || *in.Private}
	f.nextNote++
	t.Notes = append(t.Notes, n)
	now := time.Now().UTC().Format(time.RFC3339)
	deskJSON(w, http.StatusCreated, map[string]any{
		"id": n.ID, "body": n.Body, "body_text": freshdeskText(n.Body), "private": n.Private, "incoming": false,
		"ticket_id": t.ID, "user_id": 43000000000, "created_at": now, "updated_at": now,
	})
}

// freshdeskText is roughly how Freshdesk derives *_text from HTML.
func freshdeskText(html string) string {
	var b strings.Builder
	in := false
	for _, r := range strings.ReplaceAll(html, "<br>", "\n") {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}
