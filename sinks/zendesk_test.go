package sinks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

const (
	zdEmail = "bot@acme.example"
	zdToken = "zd-api-token-7f3a9c"
)

// deskRequest is one request a helpdesk fake received.
type deskRequest struct {
	method, path string
	header       http.Header
	body         []byte
}

// deskRecorder serves a vendor fake from internal/fakeapi and records what
// it was sent.
type deskRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []deskRequest
}

func newDeskRecorder(t *testing.T, h http.Handler) *deskRecorder {
	rec := &deskRecorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, deskRequest{r.Method, r.URL.RequestURI(), r.Header.Clone(), body})
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

// requests returns the requests whose path starts with prefix.
func (rec *deskRecorder) requests(prefix string) []deskRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []deskRequest
	for _, r := range rec.reqs {
		if strings.HasPrefix(r.path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func (rec *deskRecorder) last(t *testing.T, prefix string) deskRequest {
	t.Helper()
	reqs := rec.requests(prefix)
	if len(reqs) == 0 {
		t.Fatalf("no request to %s", prefix)
	}
	return reqs[len(reqs)-1]
}

// deskGolden compares a request with a golden file: method and path, then
// the JSON body indented (with <, > and & as themselves, which is the same
// JSON).
func deskGolden(t *testing.T, name string, r deskRequest) {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, r.body, "", "  "); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.body)
	}
	text := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(b.String())
	golden(t, name, []byte(r.method+" "+r.path+"\n"+text+"\n"))
}

// deskWant checks a Deliver error: its status, whether it is permanent,
// its Retry-After floor and a piece of its text.
func deskWant(t *testing.T, res router.Result, err error, code int, permanent bool, after time.Duration, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error with HTTP %d, got none (%+v)", code, res)
	}
	if res.StatusCode != code || router.IsPermanent(err) != permanent || router.RetryAfterOf(err) < after || !strings.Contains(err.Error(), text) {
		t.Errorf("got HTTP %d, permanent %v, retry after %v: %q; want HTTP %d, permanent %v, after ≥ %v, containing %q",
			res.StatusCode, router.IsPermanent(err), router.RetryAfterOf(err), err, code, permanent, after, text)
	}
}

func zendeskFake(t *testing.T) (*fakeapi.Zendesk, *deskRecorder) {
	f := fakeapi.NewZendesk(zdEmail, zdToken)
	return f, newDeskRecorder(t, f)
}

func zendeskSinkAt(t *testing.T, url string) router.Sink {
	t.Helper()
	return mustBuild(t, "zendesk", "subdomain: acme\nemail: "+zdEmail+"\ntoken: ${ZD_TOKEN}\nbase_url: "+url, map[string]string{"ZD_TOKEN": zdToken})
}

func zendeskDelivery() *router.Delivery {
	d := delivery(map[string]string{
		"subject": "Sad chat from Ann", "body": "Ann rated the chat sad.\nFeedback: too slow <b>&</b>",
		"requester": " ann@example.com ", "requester_name": "Ann Smith", "priority": " High ", "tags": "salesiq, csat-sad,",
	})
	d.DedupKey = "salesiq:chat-42"
	return d
}

func TestZendeskCreate(t *testing.T) {
	f, rec := zendeskFake(t)
	s := zendeskSinkAt(t, rec.URL)
	res, err := s.Deliver(context.Background(), zendeskDelivery())
	if err != nil || res.StatusCode != 201 || res.RemoteID != "35436" {
		t.Fatalf("Deliver: %v, %+v", err, res)
	}
	// The agent's page on the subdomain, not the answer's API url nor
	// base_url: people open tickets there.
	zdLink := router.Link{"id": "35436", "number": "35436", "url": "https://acme.zendesk.com/agent/tickets/35436"}
	wantLink(t, "create", res.Link, zdLink)
	r := rec.last(t, "/")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(zdEmail+"/token:"+zdToken))
	for h, want := range map[string]string{"Authorization": basic, "Idempotency-Key": "dlv-0001", "Content-Type": "application/json", "User-Agent": "hookroute"} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	deskGolden(t, "zendesk/create.golden", r)
	tickets := f.Tickets()
	if len(tickets) != 1 || tickets[0].ExternalID != "salesiq:chat-42" || len(tickets[0].Comments) != 1 || !tickets[0].Public[0] {
		t.Fatalf("tickets %+v", tickets)
	}

	// A retry or replay of the same delivery is answered with the same
	// ticket (Idempotency-Key).
	res, err = s.Deliver(context.Background(), zendeskDelivery())
	if err != nil || res.RemoteID != "35436" || len(f.Tickets()) != 1 {
		t.Errorf("replay: %v, %+v, %d tickets", err, res, len(f.Tickets()))
	}
	wantLink(t, "replay", res.Link, zdLink)
	// Without a dedup key, external_id is the delivery id.
	d := delivery(map[string]string{"subject": "No key"})
	d.ID = "dlv-0002"
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if tk := f.Tickets(); len(tk) != 2 || tk[1].ExternalID != "dlv-0002" || tk[1].Comments[0] != "No key" || tk[1].RequesterEmail != "" {
		t.Errorf("ticket without key or body: %+v", tk[len(tk)-1])
	}
}

func TestZendeskFollowUp(t *testing.T) {
	f, rec := zendeskFake(t)
	s := zendeskSinkAt(t, rec.URL)
	first, err := s.Deliver(context.Background(), zendeskDelivery())
	if err != nil {
		t.Fatal(err)
	}
	d := zendeskDelivery()
	d.ID, d.RemoteID, d.Fields["body"] = "dlv-0002", first.RemoteID, "Ann chatted again:\n\"still slow\""
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 200 || res.RemoteID != first.RemoteID {
		t.Fatalf("follow-up: %v, %+v", err, res)
	}
	wantLink(t, "follow-up", res.Link, router.Link{"id": "35436", "number": "35436", "url": "https://acme.zendesk.com/agent/tickets/35436"})
	r := rec.last(t, "/")
	if r.header.Get("Idempotency-Key") != "" {
		t.Error("a comment carries an Idempotency-Key")
	}
	deskGolden(t, "zendesk/followup.golden", r)

	d.Fields["public"] = "TRUE"
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	tk := f.Tickets()
	if len(tk) != 1 || len(tk[0].Comments) != 3 || tk[0].Comments[1] != "Ann chatted again:\n\"still slow\"" || tk[0].Public[1] || !tk[0].Public[2] {
		t.Errorf("ticket %+v", tk)
	}
}

func TestZendeskOAuth(t *testing.T) {
	f, rec := zendeskFake(t)
	f.AcceptOAuth("oauth-abc-123")
	s := mustBuild(t, "zendesk", "base_url: "+rec.URL+"\noauth_token: ${ZD_OAUTH}", map[string]string{"ZD_OAUTH": "oauth-abc-123"})
	res, err := s.Deliver(context.Background(), zendeskDelivery())
	if err != nil {
		t.Fatal(err)
	}
	// Without a subdomain, base_url is where agents open tickets.
	wantLink(t, "create without a subdomain", res.Link, router.Link{"id": "35436", "number": "35436", "url": rec.URL + "/agent/tickets/35436"})
	if got := rec.last(t, "/").header.Get("Authorization"); got != "Bearer oauth-abc-123" {
		t.Errorf("Authorization %q", got)
	}
}

func TestZendeskErrors(t *testing.T) {
	f, rec := zendeskFake(t)
	s := zendeskSinkAt(t, rec.URL)
	ctx := context.Background()

	f.Fail(1, http.StatusTooManyRequests, "7")
	res, err := s.Deliver(ctx, zendeskDelivery())
	deskWant(t, res, err, 429, false, 7*time.Second, "TooManyRequests")
	var ra *router.RetryAfterError
	if !errors.As(err, &ra) {
		t.Errorf("429: %T is not a RetryAfterError", err)
	}
	f.Fail(1, http.StatusServiceUnavailable, "")
	res, err = s.Deliver(ctx, zendeskDelivery())
	deskWant(t, res, err, 503, false, 0, "503")
	if len(f.Tickets()) != 0 {
		t.Fatal("a failed request made a ticket")
	}

	// Zendesk's messages replace the raw answer.
	bad := zendeskDelivery()
	bad.Fields["requester"] = "ann at example"
	res, err = s.Deliver(ctx, bad)
	deskWant(t, res, err, 422, true, 0, "RecordInvalid: Record validation errors: Requester: Email is invalid")
	if _, err := s.Deliver(ctx, zendeskDelivery()); err != nil {
		t.Fatal(err)
	}
	// The same delivery id with another body is refused: permanent.
	other := zendeskDelivery()
	other.Fields["subject"] = "changed"
	res, err = s.Deliver(ctx, other)
	deskWant(t, res, err, 400, true, 0, "IdempotentRequestError")
	gone := zendeskDelivery()
	gone.RemoteID = "99"
	res, err = s.Deliver(ctx, gone)
	deskWant(t, res, err, 404, true, 0, "RecordNotFound")
	if res.RemoteID != "99" || res.Link != nil {
		t.Errorf("follow-up result %+v lost the remote id, or links a ticket it could not reach", res)
	}

	// A wrong token is permanent and never printed.
	wrong := mustBuild(t, "zendesk", "subdomain: acme\nemail: "+zdEmail+"\ntoken: ${T}\nbase_url: "+rec.URL, map[string]string{"T": "zd-wrong-token-1234"})
	res, err = wrong.Deliver(ctx, zendeskDelivery())
	deskWant(t, res, err, 401, true, 0, "Couldn't authenticate you")
	if strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("error shows the token: %v", err)
	}

	// Fields that cannot work are permanent and send nothing.
	before := len(rec.requests("/"))
	for _, fields := range []map[string]string{
		{"subject": "x", "priority": "critical"},
		{"subject": "x", "public": "yes"},
		{"subject": " ", "body": "x"},
		{"subject": " "},
	} {
		if _, err := s.Deliver(ctx, delivery(fields)); !router.IsPermanent(err) {
			t.Errorf("%v: got %v, want a permanent error", fields, err)
		}
	}
	notID := zendeskDelivery()
	notID.RemoteID = "../35436"
	if _, err := s.Deliver(ctx, notID); !router.IsPermanent(err) {
		t.Errorf("remote id %q: got %v", notID.RemoteID, err)
	}
	if n := len(rec.requests("/")) - before; n != 0 {
		t.Errorf("%d requests sent for deliveries that cannot work", n)
	}
}

func TestZendeskLimits(t *testing.T) {
	f, rec := zendeskFake(t)
	s := zendeskSinkAt(t, rec.URL)
	d := delivery(map[string]string{"subject": strings.Repeat("ä", 300), "body": strings.Repeat("€", 30000)})
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	tk := f.Tickets()[0]
	if n := utf8.RuneCountInString(tk.Subject); n != zendeskMaxSubject || !strings.HasSuffix(tk.Subject, "…") {
		t.Errorf("subject is %d runes", n)
	}
	if body := tk.Comments[0]; len(body) > zendeskMaxBody || len(body) < zendeskMaxBody-8 || !utf8.ValidString(body) || !strings.HasSuffix(body, "…") {
		t.Errorf("body is %d bytes (valid UTF-8: %v)", len(body), utf8.ValidString(body))
	}
}

func TestZendeskFieldsAndEscapes(t *testing.T) {
	specs, ok := testRegistry().RouteFields("zendesk")
	if !ok {
		t.Fatal("zendesk not registered")
	}
	names := map[string]router.FieldSpec{}
	for _, f := range specs {
		names[f.Name] = f
	}
	for _, n := range []string{"subject", "body", "requester", "requester_name", "priority", "tags", "public"} {
		f, ok := names[n]
		if !ok {
			t.Errorf("no route field %s", n)
		}
		if f.Escape != nil {
			t.Errorf("%s is escaped; Zendesk comments are plain text", n)
		}
	}
	if !names["subject"].Required || names["body"].Required {
		t.Error("subject must be required, body not")
	}
}

func TestZendeskConfig(t *testing.T) {
	env := map[string]string{"T": zdToken, "O": "oauth-abc", "BAD": "a b"}
	tests := []struct{ snippet, path, msg string }{
		{"email: a@b.c\ntoken: ${T}", "subdomain", "must be set"},
		{"subdomain: acme.zendesk.com\nemail: a@b.c\ntoken: ${T}", "subdomain", "subdomain only"},
		{"subdomain: acme\nemail: a@b.c\ntoken: ${T}\nbase_url: ftp://x", "base_url", "http or https"},
		{"subdomain: acme", "token", "exactly one"},
		{"subdomain: acme\nemail: a@b.c\ntoken: ${T}\noauth_token: ${O}", "token", "exactly one"},
		{"subdomain: acme\ntoken: ${T}", "email", "must be set"},
		{"subdomain: acme\nemail: nobody\ntoken: ${T}", "email", "email address"},
		{"subdomain: acme\nemail: a@b.c\ntoken: ${BAD}", "token", "one word"},
		{"subdomain: acme\noauth_token: ${BAD}", "oauth_token", "one word"},
		{"subdomain: acme\nemail: a@b.c\noauth_token: ${O}", "email", "token only"},
		{"subdomain: acme\nemail: a@b.c\ntoken: zd-in-the-file", "token", "by reference"},
		{"subdomain: acme\nemail: a@b.c\ntoken: ${T}\nurl: x", "url", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "zendesk", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
	}
	s := mustBuild(t, "zendesk", "subdomain: acme\nemail: a@b.c\ntoken: ${T}", env).(*zendeskSink)
	if got := endpoint(s.base, "/api/v2/tickets").String(); got != "https://acme.zendesk.com/api/v2/tickets" {
		t.Errorf("default endpoint %s", got)
	}
	s = mustBuild(t, "zendesk", "base_url: http://127.0.0.1:9/zd/\noauth_token: ${O}", env).(*zendeskSink)
	if got := endpoint(s.base, "/api/v2/tickets").String(); got != "http://127.0.0.1:9/zd/api/v2/tickets" {
		t.Errorf("base_url endpoint %s", got)
	}
}
