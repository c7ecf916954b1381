package sinks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("zohodesk",
		ticketFields(escapeHTML, // body becomes the HTML description
			// requester is the end user's email address: the ticket's
			// contact (looked up or created by Zoho). Without it the
			// sink's contact_id is the contact.
			router.FieldSpec{Name: "requester"},
			// requester_name is the contact's last name when Zoho creates
			// one; default the requester's address before the @.
			router.FieldSpec{Name: "requester_name"},
			// priority is one of the organisation's priorities (low,
			// medium and high are written Low, Medium, High).
			router.FieldSpec{Name: "priority"},
			// public renders to true or false: whether a follow-up comment
			// is public (default false, a private comment).
			router.FieldSpec{Name: "public"},
		),
		func() zohodeskConfig { return zohodeskConfig{} },
		newZohodeskSink)
}

// zohodeskConfig configures the Zoho Desk sink, which opens a ticket
// through POST /api/v1/tickets and, when a later delivery has the same
// dedup key, comments on it through POST /api/v1/tickets/{id}/comments.
//
// The sink gets its own access tokens from the refresh token (POST
// {accounts_url}/oauth/v2/token, grant_type refresh_token), keeps one
// until shortly before it expires, and refreshes once and retries once
// when the Desk answers 401. Sinks with the same client and refresh token
// share one token (Zoho limits how many a refresh token may mint).
//
// Zoho Desk has no idempotency key: what keeps one event from opening two
// tickets is the router (one delivery per dedup key at a time, and the
// remote id it stores). A create whose answer is lost may be retried into
// a second ticket.
//
// A delivery's Link is the ticket's id as "id", its ticketNumber as
// "number" and its webUrl (the agent's page, which names the help
// desk's portal, unknown to the sink) as "url", as the create's answer
// gives them. A comment's answer holds neither, so a follow-up keeps
// those recorded with the ticket; without them it has only the id.
//
// Assumptions (not verified against a live account): the ticket's contact
// object ({"email", "lastName"}) in place of contactId; 255 characters of
// subject; the accounts server's "Access Denied" answer when tokens are
// minted too often (retried after a minute); expires_in in milliseconds
// in Zoho's older answers.
type zohodeskConfig struct {
	// OrgID is the Desk organisation id, sent as the orgId header.
	OrgID string `yaml:"org_id"`
	// ClientID and ClientSecret (as ${VAR}) are the OAuth client that
	// RefreshToken (as ${VAR}) was issued to; it needs the scopes
	// Desk.tickets.CREATE and Desk.tickets.UPDATE (and Desk.contacts.CREATE
	// for new requesters).
	ClientID     string        `yaml:"client_id"`
	ClientSecret router.Secret `yaml:"client_secret"`
	RefreshToken router.Secret `yaml:"refresh_token"`
	// AccountsURL is the Zoho Accounts server of the client's data centre;
	// default https://accounts.zoho.com (.eu, .in, .com.au, … elsewhere).
	AccountsURL string `yaml:"accounts_url"`
	// BaseURL is the Desk of the same data centre; default
	// https://desk.zoho.com.
	BaseURL string `yaml:"base_url"`
	// DepartmentID is the department tickets are opened in.
	DepartmentID string `yaml:"department_id"`
	// ContactID is the contact of tickets whose route has no requester.
	ContactID string `yaml:"contact_id"`
}

const (
	zohoAccountsURL     = "https://accounts.zoho.com"
	zohoDeskURL         = "https://desk.zoho.com"
	zohoMaxSubject      = 255      // runes (assumption)
	zohoMaxBody         = 32 << 10 // bytes of HTML: see zohodeskConfig
	zohoRefreshTimeout  = 30 * time.Second
	zohoRefreshMargin   = 5 * time.Minute // stop using a token this long before it expires
	zohoDefaultTokenTTL = time.Hour       // when an answer does not say
	zohoThrottleWait    = time.Minute
)

var zohoPriorities = map[string]string{"low": "Low", "medium": "Medium", "high": "High"}

func (c *zohodeskConfig) validate() (base, accounts *url.URL, err error) {
	var p configProblems
	var msg string
	if base, msg = ticketBaseURL(c.BaseURL, zohoDeskURL); msg != "" {
		p.add("base_url", "%s", msg)
	}
	if accounts, msg = ticketBaseURL(c.AccountsURL, zohoAccountsURL); msg != "" {
		p.add("accounts_url", "%s", msg)
	}
	for _, f := range []struct {
		key, value string
		required   bool
	}{{"org_id", c.OrgID, true}, {"department_id", c.DepartmentID, true}, {"contact_id", c.ContactID, false}} {
		switch {
		case f.value == "" && f.required:
			p.add(f.key, "must be set")
		case f.value != "" && !deskDigits(f.value):
			p.add(f.key, "want a numeric Zoho Desk id")
		}
	}
	if c.ClientID == "" {
		p.add("client_id", "must be set")
	} else if !deskWord(c.ClientID) {
		p.add("client_id", "must be one word of printable ASCII")
	}
	for _, f := range []struct {
		key string
		v   router.Secret
	}{{"client_secret", c.ClientSecret}, {"refresh_token", c.RefreshToken}} {
		if f.v == "" {
			p.add(f.key, "must be set")
		} else if !deskWord(f.v.Reveal()) {
			p.add(f.key, "must be one word of printable ASCII") // never quote it
		}
	}
	return base, accounts, p.err()
}

// zohodeskSink opens and comments on tickets in one Zoho Desk department.
type zohodeskSink struct {
	conf    zohodeskConfig
	base    *url.URL
	shown   string
	client  *http.Client
	secrets []string
	auth    *zohoAuth
}

var _ router.Sink = (*zohodeskSink)(nil)

func newZohodeskSink(r *Registry, _ string, c zohodeskConfig) (*zohodeskSink, error) {
	base, accounts, err := c.validate()
	if err != nil {
		return nil, err
	}
	secret, refresh := c.ClientSecret.Reveal(), c.RefreshToken.Reveal()
	query := url.Values{"refresh_token": {refresh}, "client_id": {c.ClientID}, "client_secret": {secret}, "grant_type": {"refresh_token"}}.Encode()
	secrets := []string{secret, refresh, url.QueryEscape(secret), url.QueryEscape(refresh), query}
	tokenURL := endpoint(accounts, "/oauth/v2/token?"+query)
	key := tokenURL.Scheme + "://" + tokenURL.Host + tokenURL.Path + "\x00" + secretHash(query)
	sh := r.shared
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.zohoAuths[key]
	if a == nil {
		a = &zohoAuth{tokenURL: tokenURL.String(), shown: showURL(accounts), red: redact.New(secrets...), now: time.Now}
		sh.zohoAuths[key] = a
	}
	return &zohodeskSink{conf: c, base: base, shown: showURL(base), client: r.Client, secrets: secrets, auth: a}, nil
}

type zohoTicket struct {
	Subject      string       `json:"subject"`
	Description  string       `json:"description,omitempty"`
	DepartmentID string       `json:"departmentId"`
	ContactID    string       `json:"contactId,omitempty"`
	Email        string       `json:"email,omitempty"`
	Contact      *zohoContact `json:"contact,omitempty"`
	Priority     string       `json:"priority,omitempty"`
	Channel      string       `json:"channel"`
}

type zohoContact struct {
	Email    string `json:"email"`
	LastName string `json:"lastName"`
}

// Deliver creates a ticket, or comments on d.RemoteID when it is set.
func (s *zohodeskSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	public, _, err := deskBool(d.Fields, "public")
	if err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("zohodesk: %w", err))
	}
	body := d.Fields["body"]
	if strings.TrimSpace(body) == "" {
		body = escapeHTML(d.Fields["subject"])
	}
	html := deskHTML(body, zohoMaxBody)
	if d.RemoteID != "" {
		if !deskDigits(d.RemoteID) {
			return router.Result{}, router.Permanent(fmt.Errorf("zohodesk: remote id %q is not a ticket id", runes.Truncate(d.RemoteID, 40)))
		}
		if strings.TrimSpace(html) == "" {
			return router.Result{}, router.Permanent(errors.New("zohodesk: body and subject rendered empty"))
		}
		code, _, err := s.post(ctx, "/api/v1/tickets/"+d.RemoteID+"/comments", map[string]any{"content": html, "isPublic": public, "contentType": "html"})
		if err != nil {
			return router.Result{StatusCode: code, RemoteID: d.RemoteID}, fmt.Errorf("zohodesk: comment on ticket %s: %w", d.RemoteID, err)
		}
		link := newLink(d.RemoteID, "number", recorded(d, "number"), "url", recorded(d, "url"))
		return router.Result{StatusCode: code, RemoteID: d.RemoteID, Link: link}, nil
	}
	t := zohoTicket{
		Subject:      runes.Truncate(strings.TrimSpace(d.Fields["subject"]), zohoMaxSubject),
		Description:  html,
		DepartmentID: s.conf.DepartmentID,
		Channel:      "Web",
	}
	if p := strings.TrimSpace(d.Fields["priority"]); p != "" {
		t.Priority = cmp.Or(zohoPriorities[strings.ToLower(p)], runes.Truncate(p, 100))
	}
	if email := strings.TrimSpace(d.Fields["requester"]); email != "" {
		name, _, _ := strings.Cut(email, "@")
		t.Email, t.Contact = email, &zohoContact{Email: email, LastName: cmp.Or(strings.TrimSpace(d.Fields["requester_name"]), name)}
	} else {
		t.ContactID = s.conf.ContactID
	}
	switch {
	case t.Subject == "":
		return router.Result{}, router.Permanent(errors.New("zohodesk: subject rendered empty"))
	case t.Contact == nil && t.ContactID == "":
		return router.Result{}, router.Permanent(errors.New("zohodesk needs a requester: the requester field rendered empty and the sink has no contact_id"))
	}
	code, answer, err := s.post(ctx, "/api/v1/tickets", t)
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("zohodesk: create ticket: %w", err)
	}
	id := deskFindID(answer, "id")
	if id == "" {
		return router.Result{StatusCode: code}, router.Permanent(fmt.Errorf("zohodesk: create ticket: HTTP %d without a ticket id in the answer (a ticket may have been created)", code))
	}
	got := deskScalars(answer, "ticketNumber", "webUrl")
	link := newLink(id, "number", got["ticketNumber"], "url", answerURL(got["webUrl"]))
	return router.Result{StatusCode: code, RemoteID: id, Link: link}, nil
}

// post sends payload to the Desk with a current access token; a 401
// refreshes the token and sends once more. Zoho's error message replaces
// the raw answer in errors.
func (s *zohodeskSink) post(ctx context.Context, path string, payload any) (int, []byte, error) {
	stale := ""
	for {
		token, code, err := s.auth.get(ctx, s.client, stale)
		if err != nil {
			return code, nil, fmt.Errorf("refresh access token: %w", err)
		}
		red := redact.New(append(slices.Clip(s.secrets), token)...)
		req, err := jsonRequest(ctx, http.MethodPost, endpoint(s.base, path), payload)
		if err != nil {
			return 0, nil, red.Err(err, s.shown)
		}
		req.Header.Set("Authorization", "Zoho-oauthtoken "+token)
		req.Header["orgId"] = []string{s.conf.OrgID} // Zoho's spelling
		code, body, err := send(s.client, req, red, s.shown)
		if code == http.StatusUnauthorized && stale == "" {
			stale = token // expired or revoked early: refresh once, retry once
			continue
		}
		deskDetail(err, zohoMessage(body))
		return code, body, err
	}
}

// zohoMessage reads Zoho Desk's error shape: {"errorCode": "INVALID_DATA",
// "message": "...", "errors": [{"fieldName": "/departmentId",
// "errorType": "missing", "errorMessage": ""}]}.
func zohoMessage(body []byte) string {
	var e struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
		Errors    []struct {
			FieldName    string `json:"fieldName"`
			ErrorType    string `json:"errorType"`
			ErrorMessage string `json:"errorMessage"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	parts := []string{e.ErrorCode, e.Message}
	for _, x := range e.Errors {
		parts = append(parts, deskJoin([]string{x.FieldName, x.ErrorType, x.ErrorMessage}))
	}
	return deskJoin(parts)
}

// zohoAuth keeps one access token and refreshes it, one refresh at a time.
// The Registry holds one per OAuth client and refresh token in use
// (registryShared.zohoAuths), so that sinks sharing them, and a sink
// rebuilt by a config reload, share one token: Zoho limits how many a
// refresh token may mint. It holds no HTTP client: a refresh goes through
// the client of the sink that needs it, with that sink's CA bundle.
type zohoAuth struct {
	tokenURL string // with the credentials in its query, as Zoho documents
	shown    string
	red      *redact.Redactor
	now      func() time.Time

	mu     sync.Mutex
	token  string
	expiry time.Time // when to stop using token
	flight *zohoFlight
}

// zohoFlight is a refresh in progress; done is closed when it ends.
type zohoFlight struct {
	done  chan struct{}
	token string
	code  int
	err   error
}

// get returns a current access token other than stale (one the Desk just
// refused), refreshing it if needed. Concurrent callers share one refresh,
// which runs to its end even if the caller that started it gives up, over
// that caller's client.
func (a *zohoAuth) get(ctx context.Context, client *http.Client, stale string) (string, int, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	a.mu.Lock()
	if a.token != "" && a.token != stale && a.now().Before(a.expiry) {
		defer a.mu.Unlock()
		return a.token, 0, nil
	}
	f := a.flight
	if f == nil {
		f = &zohoFlight{done: make(chan struct{})}
		a.flight = f
		go a.refresh(context.WithoutCancel(ctx), client, f)
	}
	a.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.code, f.err
	case <-ctx.Done():
		return "", 0, ctx.Err()
	}
}

func (a *zohoAuth) refresh(ctx context.Context, client *http.Client, f *zohoFlight) {
	ctx, cancel := context.WithTimeout(ctx, zohoRefreshTimeout)
	defer cancel()
	start := a.now()
	token, ttl, code, err := a.fetch(ctx, client)
	a.mu.Lock()
	if err == nil {
		a.token, a.expiry = token, start.Add(ttl-min(zohoRefreshMargin, ttl/2))
	}
	a.flight = nil
	a.mu.Unlock()
	f.token, f.code, f.err = token, code, err
	close(f.done)
}

// fetch asks the accounts server for an access token.
func (a *zohoAuth) fetch(ctx context.Context, client *http.Client) (string, time.Duration, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.tokenURL, nil)
	if err != nil {
		return "", 0, 0, router.Permanent(a.red.Err(err, a.shown))
	}
	req.Header.Set("Accept", "application/json")
	code, body, err := send(client, req, a.red, a.shown)
	var ans struct {
		AccessToken  string `json:"access_token"`
		ExpiresIn    int64  `json:"expires_in"`
		ExpiresInSec int64  `json:"expires_in_sec"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &ans)
	why := deskJoin([]string{ans.Error, ans.Description})
	var se *statusError
	switch {
	case err != nil && ans.Error == "Access Denied" && errors.As(err, &se):
		// Too many tokens minted: Zoho answers 400, but it passes.
		deskDetail(se, why)
		return "", 0, code, &router.RetryAfterError{Err: se, After: zohoThrottleWait}
	case err != nil:
		deskDetail(err, why)
		return "", 0, code, err
	case ans.Error == "Access Denied":
		return "", 0, code, &router.RetryAfterError{Err: errors.New(snippet([]byte(why))), After: zohoThrottleWait}
	case ans.Error != "": // invalid_code, invalid_client, …: Zoho answers them with 200
		return "", 0, code, router.Permanent(fmt.Errorf("%s (check client_id, client_secret, refresh_token, and that accounts_url is the client's data centre)", snippet([]byte(why))))
	case ans.AccessToken == "" || !deskWord(ans.AccessToken):
		return "", 0, code, fmt.Errorf("HTTP %d without an access token in the answer", code)
	}
	secs := cmp.Or(ans.ExpiresInSec, ans.ExpiresIn)
	if secs > 86400 {
		secs /= 1000 // Zoho's older answers gave expires_in in milliseconds
	}
	ttl := time.Duration(secs) * time.Second
	if ttl <= 0 {
		ttl = zohoDefaultTokenTTL
	}
	return ans.AccessToken, ttl, code, nil
}
