package fakeapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ZohoDesk fakes both Zoho Accounts' token endpoint and the ticket
// endpoints of the Zoho Desk API v1, from Zoho's documentation; serve it
// once and point both accounts_url and base_url at it.
//
//   - POST /oauth/v2/token?refresh_token=…&client_id=…&client_secret=…&grant_type=refresh_token
//     (the parameters may also come as a form body) answers 200
//     {"access_token": "1000.…", "expires_in": 3600, "token_type": "Bearer", ...}.
//     Bad credentials also answer 200, with {"error": "invalid_code"}
//     (refresh token), "invalid_client" (client id) or
//     "invalid_client_secret".
//   - Every Desk request needs "Authorization: Zoho-oauthtoken {token}"
//     with a live token (else 401 {"errorCode": "INVALID_OAUTH", ...}) and
//     "orgId: {org_id}" (else 400 {"errorCode": "INVALID_DATA", ...}).
//   - POST /api/v1/tickets needs subject, departmentId and a contact
//     (contactId, or a contact object with email or lastName), and answers
//     200 with the ticket ({"id": "1892000000143237", "ticketNumber": "101",
//     "webUrl": "{scheme}://{host}/support/zylker/ShowHomePage.do#Cases/dv/1892000000143237", ...}):
//     webUrl is the agent's page of the ticket, under the help desk's
//     portal name (here always ZohoDeskPortal).
//   - POST /api/v1/tickets/{id}/comments with {"content", "isPublic",
//     "contentType": "plainText"|"html"} answers 200 with the comment; an
//     unknown ticket answers 404.
//   - Validation errors answer 422 {"errorCode": "INVALID_DATA", "message":
//     ..., "errors": [{"fieldName": "/departmentId", "errorType": "missing"}]}.
//
// Not verified against a live account (assumptions): the token endpoint's
// error codes, the status and errorCode for a missing orgId, the contact
// object, and the 404 body.
type ZohoDesk struct {
	orgID, clientID, clientSecret, refreshToken string

	mu        sync.Mutex
	tokens    map[string]time.Time // access token → expiry
	refreshes int
	nextID    int64
	tickets   []*ZohoDeskTicket
	faults    deskFaults
}

// ZohoDeskTicket is a ticket the fake holds.
type ZohoDeskTicket struct {
	ID           string
	TicketNumber string
	Subject      string
	Description  string // HTML, as sent
	DepartmentID string
	ContactID    string // as sent, or made up for a contact object
	Email        string // the ticket's email, or the contact object's
	ContactName  string // the contact object's lastName
	Priority     string
	Channel      string
	Comments     []ZohoDeskComment
}

// ZohoDeskComment is a comment on a ticket.
type ZohoDeskComment struct {
	ID          string
	Content     string
	ContentType string
	Public      bool
}

// ZohoDeskPortal is the portal name of the fake's help desk, part of the
// path of a ticket's webUrl (zylker is the company of Zoho's examples).
const ZohoDeskPortal = "zylker"

// zohoTokenTTL is what the accounts server grants, in seconds.
const zohoTokenTTL = 3600

// NewZohoDesk returns a fake organisation orgID whose OAuth client
// (clientID, clientSecret) holds refreshToken.
func NewZohoDesk(orgID, clientID, clientSecret, refreshToken string) *ZohoDesk {
	return &ZohoDesk{orgID: orgID, clientID: clientID, clientSecret: clientSecret, refreshToken: refreshToken,
		tokens: map[string]time.Time{}, nextID: 1892000000143237}
}

// ExpireTokens ends the life of every access token issued so far, as an
// hour passing would: the Desk answers 401 to them.
func (z *ZohoDesk) ExpireTokens() {
	z.mu.Lock()
	defer z.mu.Unlock()
	clear(z.tokens)
}

// TokenRefreshes counts the access tokens issued.
func (z *ZohoDesk) TokenRefreshes() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.refreshes
}

// Fail makes the next n Desk requests (not token requests) answer status,
// with a Retry-After header when retryAfter is not empty, before any other
// check.
func (z *ZohoDesk) Fail(n, status int, retryAfter string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.faults.set(n, status, retryAfter)
}

// Tickets returns copies of the tickets created, oldest first.
func (z *ZohoDesk) Tickets() []ZohoDeskTicket {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]ZohoDeskTicket, len(z.tickets))
	for i, t := range z.tickets {
		out[i] = *t
		out[i].Comments = slices.Clone(t.Comments)
	}
	return out
}

// ServeHTTP implements http.Handler.
func (z *ZohoDesk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if r.URL.Path == "/oauth/v2/token" {
		z.token(w, r)
		return
	}
	if status, after, ok := z.faults.next(); ok {
		deskFault(w, status, after, map[string]any{"errorCode": strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_")), "message": http.StatusText(status)})
		return
	}
	if z.authorized(w, r) {
		z.route(w, r)
	}
}

// authorized checks the access token and the orgId header, answering when
// either is wrong; the lock is held.
func (z *ZohoDesk) authorized(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Zoho-oauthtoken ")
	if exp, live := z.tokens[token]; !ok || !live || !time.Now().Before(exp) {
		deskJSON(w, http.StatusUnauthorized, map[string]any{"errorCode": "INVALID_OAUTH", "message": "The OAuth Token you provided is invalid."})
		return false
	}
	if r.Header.Get("orgId") != z.orgID {
		deskJSON(w, http.StatusBadRequest, map[string]any{"errorCode": "INVALID_DATA", "message": "The orgId header is missing or names no organization of this user."})
		return false
	}
	return true
}

// route answers an authorized request: a new ticket, or a comment on one;
// the lock is held.
func (z *ZohoDesk) route(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/tickets")
	id, isComments := strings.CutSuffix(strings.TrimPrefix(rest, "/"), "/comments")
	switch {
	case ok && rest == "" && r.Method == http.MethodPost:
		z.create(w, r)
	case ok && isComments && id != "" && !strings.Contains(id, "/") && r.Method == http.MethodPost:
		z.comment(w, r, id)
	case ok && (rest == "" || isComments):
		w.Header().Set("Allow", "POST")
		deskJSON(w, http.StatusMethodNotAllowed, map[string]any{"errorCode": "METHOD_NOT_ALLOWED", "message": "The method is not allowed for this URL."})
	default:
		deskJSON(w, http.StatusNotFound, map[string]any{"errorCode": "URL_NOT_FOUND", "message": "The URL you requested could not be found."})
	}
}

func (z *ZohoDesk) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		deskJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request"})
		return
	}
	_ = r.ParseForm() // the query, and a form body if there is one
	var fail string
	switch {
	case r.Form.Get("grant_type") != "refresh_token":
		fail = "unsupported_grant_type"
	case r.Form.Get("client_id") != z.clientID:
		fail = "invalid_client"
	case r.Form.Get("client_secret") != z.clientSecret:
		fail = "invalid_client_secret"
	case r.Form.Get("refresh_token") != z.refreshToken:
		fail = "invalid_code"
	}
	if fail != "" {
		deskJSON(w, http.StatusOK, map[string]any{"error": fail})
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "1000." + hex.EncodeToString(b[:]) + "." + hex.EncodeToString(b[8:])
	z.tokens[token] = time.Now().Add(zohoTokenTTL * time.Second)
	z.refreshes++
	deskJSON(w, http.StatusOK, map[string]any{"access_token": token, "scope": "Desk.tickets.CREATE Desk.tickets.UPDATE",
		"api_domain": "https://www.zohoapis.com", "token_type": "Bearer", "expires_in": zohoTokenTTL})
}

type zohoField struct {
	FieldName string `json:"fieldName"`
	ErrorType string `json:"errorType"`
	ErrorMsg  string `json:"errorMessage"`
}

func zohoInvalid(w http.ResponseWriter, errs []zohoField) {
	deskJSON(w, http.StatusUnprocessableEntity, map[string]any{"errorCode": "INVALID_DATA",
		"message": "The data is invalid due to validation restrictions", "errors": errs})
}

func (z *ZohoDesk) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Subject      string `json:"subject"`
		Description  string `json:"description"`
		DepartmentID string `json:"departmentId"`
		ContactID    string `json:"contactId"`
		Email        string `json:"email"`
		Contact      *struct {
			Email    string `json:"email"`
			LastName string `json:"lastName"`
		} `json:"contact"`
		Priority string `json:"priority"`
		Channel  string `json:"channel"`
	}
	raw, err := deskRead(r)
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		zohoInvalid(w, []zohoField{{"/", "invalid", err.Error()}})
		return
	}
	var errs []zohoField
	if strings.TrimSpace(in.Subject) == "" {
		errs = append(errs, zohoField{"/subject", "missing", ""})
	}
	if in.DepartmentID == "" {
		errs = append(errs, zohoField{"/departmentId", "missing", ""})
	} else if _, err := strconv.ParseUint(in.DepartmentID, 10, 64); err != nil {
		errs = append(errs, zohoField{"/departmentId", "invalid", ""})
	}
	if in.ContactID == "" && (in.Contact == nil || in.Contact.Email == "" && in.Contact.LastName == "") {
		errs = append(errs, zohoField{"/contactId", "missing", ""})
	}
	if len(errs) > 0 {
		zohoInvalid(w, errs)
		return
	}
	t := &ZohoDeskTicket{ID: strconv.FormatInt(z.nextID, 10), TicketNumber: strconv.Itoa(101 + len(z.tickets)),
		Subject: in.Subject, Description: in.Description, DepartmentID: in.DepartmentID, ContactID: in.ContactID,
		Email: in.Email, Priority: in.Priority, Channel: in.Channel}
	z.nextID += 1000
	if in.Contact != nil {
		if t.Email == "" {
			t.Email = in.Contact.Email
		}
		t.ContactName = in.Contact.LastName
		if t.ContactID == "" {
			t.ContactID = strconv.FormatInt(z.nextID+1, 10)
		}
	}
	z.tickets = append(z.tickets, t)
	// Where Zoho puts id in its answer is not known; here it comes first.
	type ticket struct {
		ID           string `json:"id"`
		TicketNumber string `json:"ticketNumber"`
		Subject      string `json:"subject"`
		DepartmentID string `json:"departmentId"`
		ContactID    string `json:"contactId"`
		Email        any    `json:"email"`
		Priority     any    `json:"priority"`
		Channel      any    `json:"channel"`
		Status       string `json:"status"`
		StatusType   string `json:"statusType"`
		CreatedTime  string `json:"createdTime"`
		WebURL       string `json:"webUrl"`
		Description  string `json:"description"`
	}
	deskJSON(w, http.StatusOK, ticket{
		ID: t.ID, TicketNumber: t.TicketNumber, Subject: t.Subject, DepartmentID: t.DepartmentID, ContactID: t.ContactID,
		Email: deskNull(t.Email), Priority: deskNull(t.Priority), Channel: deskNull(t.Channel), Status: "Open", StatusType: "Open",
		CreatedTime: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		WebURL:      deskScheme(r) + "://" + r.Host + "/support/" + ZohoDeskPortal + "/ShowHomePage.do#Cases/dv/" + t.ID, Description: t.Description,
	})
}

func (z *ZohoDesk) comment(w http.ResponseWriter, r *http.Request, id string) {
	var t *ZohoDeskTicket
	for _, c := range z.tickets {
		if c.ID == id {
			t = c
		}
	}
	if t == nil {
		deskJSON(w, http.StatusNotFound, map[string]any{"errorCode": "RESOURCE_NOT_FOUND", "message": "The requested resource does not exist."})
		return
	}
	var in struct {
		Content     string `json:"content"`
		IsPublic    *bool  `json:"isPublic"`
		ContentType string `json:"contentType"`
	}
	raw, err := deskRead(r)
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		zohoInvalid(w, []zohoField{{"/", "invalid", err.Error()}})
		return
	}
	var errs []zohoField
	if strings.TrimSpace(in.Content) == "" {
		errs = append(errs, zohoField{"/content", "missing", ""})
	}
	if in.IsPublic == nil {
		errs = append(errs, zohoField{"/isPublic", "missing", ""})
	}
	if in.ContentType == "" {
		in.ContentType = "plainText"
	}
	if in.ContentType != "plainText" && in.ContentType != "html" {
		errs = append(errs, zohoField{"/contentType", "invalid", ""})
	}
	if len(errs) > 0 {
		zohoInvalid(w, errs)
		return
	}
	c := ZohoDeskComment{ID: strconv.FormatInt(z.nextID, 10), Content: in.Content, ContentType: in.ContentType, Public: *in.IsPublic}
	z.nextID += 1000
	t.Comments = append(t.Comments, c)
	deskJSON(w, http.StatusOK, map[string]any{"id": c.ID, "content": c.Content, "contentType": c.ContentType,
		"isPublic": c.Public, "commentedTime": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "attachments": []any{}})
}
