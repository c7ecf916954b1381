package fakeapi

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Zendesk fakes the ticket endpoints of the Zendesk Support API, from
// Zendesk's documentation:
//
//   - POST /api/v2/tickets(.json) with {"ticket": {...}} creates a ticket
//     and answers 201 {"ticket": {"id": 35436, "url": ".../api/v2/tickets/35436.json", ...}}.
//     The first comment is the ticket's description.
//   - PUT /api/v2/tickets/{id}(.json) with {"ticket": {"comment": {...}}}
//     adds a comment (public unless "public": false) and answers 200; an
//     unknown id answers 404, a ticket with 5000 comments 422.
//   - Auth is HTTP Basic "{email}/token:{api_token}" or, once AcceptOAuth
//     was called, "Bearer {token}"; anything else answers 401.
//   - An Idempotency-Key header on create is remembered: the same key with
//     the same body answers the first ticket again (201, header
//     x-zendesk-api-idempotency-lookup: hit, no new ticket); the same key
//     with another body answers 400. The first use answers "miss".
//   - Errors have Zendesk's shape: {"error": "RecordInvalid",
//     "description": "...", "details": {"field": [{"description": "..."}]}}.
//
// Idempotency-Key conflict handling and key expiry are not documented in
// what we read; the fake keeps keys forever.
type Zendesk struct {
	email, token string

	mu      sync.Mutex
	oauth   string
	nextID  int64
	tickets []*ZendeskTicket
	idem    map[string]zendeskIdem
	faults  deskFaults
}

// ZendeskTicket is a ticket the fake holds.
type ZendeskTicket struct {
	ID             int64
	Subject        string
	Priority       string
	Tags           []string
	ExternalID     string
	RequesterEmail string
	RequesterName  string
	// IdempotencyKey is the create request's Idempotency-Key, if any.
	IdempotencyKey string
	// Comments holds the description (the create request's comment) first,
	// then every comment added; Public[i] says whether Comments[i] is
	// public.
	Comments []string
	Public   []bool
}

type zendeskIdem struct {
	sum  [sha256.Size]byte
	id   int64
	resp []byte
}

// zendeskMaxComments is Zendesk's documented comment cap per ticket.
const zendeskMaxComments = 5000

// NewZendesk returns a fake account that accepts the API token token of
// the agent email.
func NewZendesk(email, token string) *Zendesk {
	return &Zendesk{email: email, token: token, nextID: 35436, idem: map[string]zendeskIdem{}}
}

// AcceptOAuth makes the fake accept "Authorization: Bearer {token}" too.
func (z *Zendesk) AcceptOAuth(token string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.oauth = token
}

// Fail makes the next n requests answer status, with a Retry-After header
// when retryAfter is not empty, before any other check.
func (z *Zendesk) Fail(n, status int, retryAfter string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.faults.set(n, status, retryAfter)
}

// Tickets returns copies of the tickets created, oldest first.
func (z *Zendesk) Tickets() []ZendeskTicket {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]ZendeskTicket, len(z.tickets))
	for i, t := range z.tickets {
		out[i] = *t
		out[i].Tags = slices.Clone(t.Tags)
		out[i].Comments = slices.Clone(t.Comments)
		out[i].Public = slices.Clone(t.Public)
	}
	return out
}

type zendeskComment struct {
	Body   string `json:"body"`
	Public *bool  `json:"public"`
}

type zendeskTicketBody struct {
	Ticket struct {
		Subject   string          `json:"subject"`
		Comment   *zendeskComment `json:"comment"`
		Priority  string          `json:"priority"`
		Tags      []string        `json:"tags"`
		Requester *struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		} `json:"requester"`
		ExternalID string `json:"external_id"`
	} `json:"ticket"`
}

// ServeHTTP implements http.Handler.
func (z *Zendesk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if status, after, ok := z.faults.next(); ok {
		deskFault(w, status, after, map[string]any{"error": strings.ReplaceAll(http.StatusText(status), " ", ""), "description": http.StatusText(status)})
		return
	}
	if !z.authorized(r) {
		deskJSON(w, http.StatusUnauthorized, map[string]any{"error": "Couldn't authenticate you"})
		return
	}
	path := strings.TrimSuffix(r.URL.Path, ".json")
	rest, ok := strings.CutPrefix(path, "/api/v2/tickets")
	switch {
	case ok && rest == "" && r.Method == http.MethodPost:
		z.create(w, r)
	case ok && strings.HasPrefix(rest, "/") && r.Method == http.MethodPut:
		z.update(w, r, rest[1:])
	case ok && (rest == "" || strings.HasPrefix(rest, "/")):
		w.Header().Set("Allow", "POST, PUT")
		deskJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "MethodNotAllowed"})
	default:
		deskJSON(w, http.StatusNotFound, map[string]any{"error": "InvalidEndpoint", "description": "Not found"})
	}
}

func (z *Zendesk) authorized(r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok {
		return user == z.email+"/token" && pass == z.token && z.token != ""
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && z.oauth != "" && bearer == z.oauth
}

func (z *Zendesk) create(w http.ResponseWriter, r *http.Request) {
	raw, err := deskRead(r)
	if err != nil {
		deskJSON(w, http.StatusBadRequest, map[string]any{"error": "InvalidRequest", "description": err.Error()})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	sum := sha256.Sum256(raw)
	if z.replayIdempotent(w, key, sum) {
		return
	}
	var b zendeskTicketBody
	if err := json.Unmarshal(raw, &b); err != nil {
		deskJSON(w, http.StatusBadRequest, map[string]any{"error": "InvalidRequest", "description": "Invalid JSON: " + err.Error()})
		return
	}
	if invalid := b.invalid(); len(invalid) > 0 {
		zendeskInvalid(w, invalid)
		return
	}
	in := b.Ticket
	t := &ZendeskTicket{ID: z.nextID, Subject: in.Subject, Priority: in.Priority, Tags: in.Tags, ExternalID: in.ExternalID, IdempotencyKey: key}
	z.nextID++
	if in.Requester != nil {
		t.RequesterEmail, t.RequesterName = in.Requester.Email, in.Requester.Name
	}
	t.Comments, t.Public = []string{in.Comment.Body}, []bool{in.Comment.Public == nil || *in.Comment.Public}
	z.tickets = append(z.tickets, t)
	resp := z.answer(r, t)
	if key != "" {
		z.idem[key] = zendeskIdem{sum: sum, id: t.ID, resp: resp}
		w.Header().Set("x-zendesk-api-idempotency-lookup", "miss")
	}
	w.Header().Set("Location", zendeskURL(r, t.ID))
	deskRaw(w, http.StatusCreated, resp)
}

// replayIdempotent answers a create whose Idempotency-Key was used before:
// with the first answer if the body is the same, with an error if not. It
// reports whether it answered.
func (z *Zendesk) replayIdempotent(w http.ResponseWriter, key string, sum [sha256.Size]byte) bool {
	prev, ok := z.idem[key]
	if !ok || key == "" {
		return false
	}
	if prev.sum != sum {
		deskJSON(w, http.StatusBadRequest, map[string]any{"error": "IdempotentRequestError",
			"description": "This Idempotency-Key was already used with a different request body"})
		return true
	}
	w.Header().Set("x-zendesk-api-idempotency-lookup", "hit")
	deskRaw(w, http.StatusCreated, prev.resp)
	return true
}

// invalid checks a create as Zendesk does: Zendesk's message by field,
// empty if the ticket is valid.
func (b *zendeskTicketBody) invalid() map[string]string {
	in := b.Ticket
	invalid := map[string]string{}
	if in.Comment == nil || strings.TrimSpace(in.Comment.Body) == "" {
		invalid["description"] = "Description: cannot be blank"
	}
	if in.Priority != "" && !slices.Contains([]string{"low", "normal", "high", "urgent"}, in.Priority) {
		invalid["priority"] = "Priority: is not valid"
	}
	if in.Requester != nil && !strings.Contains(in.Requester.Email, "@") {
		invalid["requester"] = "Requester: Email is invalid"
	}
	return invalid
}

func (z *Zendesk) update(w http.ResponseWriter, r *http.Request, rawID string) {
	id, err := strconv.ParseInt(rawID, 10, 64)
	var t *ZendeskTicket
	if err == nil {
		for _, c := range z.tickets {
			if c.ID == id {
				t = c
			}
		}
	}
	if t == nil {
		deskJSON(w, http.StatusNotFound, map[string]any{"error": "RecordNotFound", "description": "Not found"})
		return
	}
	raw, err := deskRead(r)
	var b zendeskTicketBody
	if err == nil {
		err = json.Unmarshal(raw, &b)
	}
	if err != nil {
		deskJSON(w, http.StatusBadRequest, map[string]any{"error": "InvalidRequest", "description": err.Error()})
		return
	}
	c := b.Ticket.Comment
	switch {
	case c == nil || strings.TrimSpace(c.Body) == "":
		zendeskInvalid(w, map[string]string{"comment": "Comment: cannot be blank"})
		return
	case len(t.Comments) >= zendeskMaxComments:
		zendeskInvalid(w, map[string]string{"base": fmt.Sprintf("Ticket has reached the maximum of %d comments", zendeskMaxComments)})
		return
	}
	t.Comments = append(t.Comments, c.Body)
	t.Public = append(t.Public, c.Public == nil || *c.Public)
	deskRaw(w, http.StatusOK, z.answer(r, t))
}

// answer is the ticket as Zendesk shows it.
func (z *Zendesk) answer(r *http.Request, t *ZendeskTicket) []byte {
	status := "new"
	if len(t.Comments) > 1 {
		status = "open"
	}
	// Zendesk's answers list url and id first, description later.
	type ticket struct {
		URL         string   `json:"url"`
		ID          int64    `json:"id"`
		ExternalID  any      `json:"external_id"`
		Via         any      `json:"via"`
		CreatedAt   string   `json:"created_at"`
		Type        any      `json:"type"`
		Subject     string   `json:"subject"`
		RawSubject  string   `json:"raw_subject"`
		Description string   `json:"description"`
		Priority    any      `json:"priority"`
		Status      string   `json:"status"`
		RequesterID int64    `json:"requester_id"`
		SubmitterID int64    `json:"submitter_id"`
		Tags        []string `json:"tags"`
	}
	b, _ := json.Marshal(map[string]any{"ticket": ticket{
		URL: zendeskURL(r, t.ID), ID: t.ID, ExternalID: deskNull(t.ExternalID), Via: map[string]any{"channel": "api"},
		CreatedAt: time.Now().UTC().Format(time.RFC3339), Subject: t.Subject, RawSubject: t.Subject,
		Description: t.Comments[0], Priority: deskNull(t.Priority), Status: status,
		RequesterID: 1900000000000 + t.ID, SubmitterID: 1800000000001, Tags: deskList(t.Tags),
	}})
	return b
}

func zendeskURL(r *http.Request, id int64) string {
	return fmt.Sprintf("%s://%s/api/v2/tickets/%d.json", deskScheme(r), r.Host, id)
}

func zendeskInvalid(w http.ResponseWriter, details map[string]string) {
	d := map[string]any{}
	for k, v := range details {
		d[k] = []map[string]string{{"description": v, "error": "InvalidValue"}}
	}
	deskJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "RecordInvalid", "description": "Record validation errors", "details": d})
}

// The helpers below are shared by the helpdesk fakes (Zendesk, Freshdesk,
// Zoho Desk).

// deskFaults is a helpdesk fake's fault script: the next n requests answer
// status. The fake's lock guards it.
type deskFaults struct {
	n, status  int
	retryAfter string
}

func (f *deskFaults) set(n, status int, retryAfter string) {
	f.n, f.status, f.retryAfter = n, status, retryAfter
}

// next reports whether the current request is scripted to fail, and how.
func (f *deskFaults) next() (int, string, bool) {
	if f.n <= 0 {
		return 0, "", false
	}
	f.n--
	return f.status, f.retryAfter, true
}

// deskFault answers a scripted failure with the vendor's error body.
func deskFault(w http.ResponseWriter, status int, retryAfter string, body any) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	deskJSON(w, status, body)
}

// deskMaxBody bounds what a helpdesk fake reads of a request.
const deskMaxBody = 1 << 20

// deskRead reads a JSON request body, as the vendors require.
func deskRead(r *http.Request) ([]byte, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("Content-Type must be application/json")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, deskMaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > deskMaxBody {
		return nil, fmt.Errorf("request body is larger than %d bytes", deskMaxBody)
	}
	return b, nil
}

func deskJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	deskRaw(w, status, b)
}

func deskRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func deskScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func deskNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func deskList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
