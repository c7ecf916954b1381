package sinks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

const (
	zohoOrg     = "60001234567"
	zohoDept    = "1892000000006907"
	zohoClient  = "1000.CLIENTID4F2A"
	zohoSecret  = "zoho-client-secret-4d5e"
	zohoRefresh = "1000.zoho-refresh-8c9d"
)

var zohoEnv = map[string]string{"ZS": zohoSecret, "ZR": zohoRefresh}

func zohoFake(t *testing.T) (*fakeapi.ZohoDesk, *deskRecorder) {
	f := fakeapi.NewZohoDesk(zohoOrg, zohoClient, zohoSecret, zohoRefresh)
	return f, newDeskRecorder(t, f)
}

func zohoConfig(url, extra string) string {
	return "org_id: \"" + zohoOrg + "\"\nclient_id: " + zohoClient + "\nclient_secret: ${ZS}\nrefresh_token: ${ZR}\n" +
		"accounts_url: " + url + "\nbase_url: " + url + "\ndepartment_id: \"" + zohoDept + "\"\n" + extra
}

func zohoSinkAt(t *testing.T, url, extra string) *zohodeskSink {
	t.Helper()
	return mustBuild(t, "zohodesk", zohoConfig(url, extra), zohoEnv).(*zohodeskSink)
}

func zohoDelivery() *router.Delivery {
	return delivery(map[string]string{
		"subject": "Sad chat from Ann", "body": "Ann rated the chat sad.\nFeedback: " + escapeHTML(`too slow <b>&</b>`),
		"requester": "ann@example.com", "requester_name": "Smith", "priority": "high",
	})
}

func TestZohodeskCreate(t *testing.T) {
	f, rec := zohoFake(t)
	reg := testRegistry()
	buildIn := func(reg *Registry, extra string) *zohodeskSink {
		t.Helper()
		s, err := reg.Build("zohodesk", "test-sink", node(t, zohoConfig(rec.URL, extra), zohoEnv))
		if err != nil {
			t.Fatal(err)
		}
		return s.(*zohodeskSink)
	}
	s := buildIn(reg, "contact_id: \"1892000000042032\"")
	res, err := s.Deliver(context.Background(), zohoDelivery())
	if err != nil || res.StatusCode != 200 || res.RemoteID != "1892000000143237" {
		t.Fatalf("Deliver: %v, %+v", err, res)
	}
	wantLink(t, "create", res.Link, router.Link{"id": "1892000000143237", "number": "101",
		"url": rec.URL + "/support/" + fakeapi.ZohoDeskPortal + "/ShowHomePage.do#Cases/dv/1892000000143237"})
	tok := rec.last(t, "/oauth/v2/token")
	q, _ := url.ParseQuery(strings.TrimPrefix(tok.path, "/oauth/v2/token?"))
	if tok.method != "POST" || q.Get("refresh_token") != zohoRefresh || q.Get("client_id") != zohoClient ||
		q.Get("client_secret") != zohoSecret || q.Get("grant_type") != "refresh_token" {
		t.Errorf("token request %s %s", tok.method, tok.path)
	}
	r := rec.last(t, "/api/")
	if got := r.header.Get("Authorization"); !strings.HasPrefix(got, "Zoho-oauthtoken 1000.") {
		t.Errorf("Authorization %q", got)
	}
	if got := r.header.Get("orgId"); got != zohoOrg {
		t.Errorf("orgId %q", got)
	}
	deskGolden(t, "zohodesk/create.golden", r)

	// Without a requester, the sink's contact_id; the token is reused.
	d := delivery(map[string]string{"subject": "No requester", "priority": "Escalated"})
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	tk := f.Tickets()
	if len(tk) != 2 || tk[0].Email != "ann@example.com" || tk[0].ContactName != "Smith" || tk[0].Priority != "High" || tk[0].Channel != "Web" ||
		tk[1].ContactID != "1892000000042032" || tk[1].Description != "No requester" || tk[1].Priority != "Escalated" {
		t.Errorf("tickets %+v", tk)
	}
	if n := f.TokenRefreshes(); n != 1 {
		t.Errorf("%d token refreshes for two deliveries, want 1", n)
	}
	// A second sink with the same client and refresh token shares it (as
	// does a sink rebuilt by a reload: the Registry outlives reloads).
	if _, err := buildIn(reg, "").Deliver(context.Background(), zohoDelivery()); err != nil || f.TokenRefreshes() != 1 {
		t.Errorf("second sink: %v, %d refreshes", err, f.TokenRefreshes())
	}
	// Another Registry (another router in the same process, as in tests)
	// keeps its own.
	if _, err := buildIn(testRegistry(), "").Deliver(context.Background(), zohoDelivery()); err != nil || f.TokenRefreshes() != 2 {
		t.Errorf("sink of another registry: %v, %d refreshes, want 2", err, f.TokenRefreshes())
	}
}

func TestZohodeskFollowUp(t *testing.T) {
	f, rec := zohoFake(t)
	s := zohoSinkAt(t, rec.URL, "")
	first, err := s.Deliver(context.Background(), zohoDelivery())
	if err != nil {
		t.Fatal(err)
	}
	d := zohoDelivery()
	d.ID, d.RemoteID, d.Fields["body"] = "dlv-0002", first.RemoteID, "Ann chatted again:\n"+escapeHTML(`"still" slow`)
	d.RemoteLink = first.Link // as the router records it
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 200 || res.RemoteID != first.RemoteID {
		t.Fatalf("follow-up: %v, %+v", err, res)
	}
	// A comment's answer has no webUrl nor ticketNumber: the follow-up
	// keeps those recorded with the ticket.
	wantLink(t, "follow-up", res.Link, router.Link{"id": first.RemoteID, "number": "101",
		"url": rec.URL + "/support/" + fakeapi.ZohoDeskPortal + "/ShowHomePage.do#Cases/dv/" + first.RemoteID})
	deskGolden(t, "zohodesk/followup.golden", rec.last(t, "/api/"))
	d.Fields["public"] = "true"
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	tk := f.Tickets()
	if len(tk) != 1 || len(tk[0].Comments) != 2 || tk[0].Comments[0].Public || !tk[0].Comments[1].Public || tk[0].Comments[0].ContentType != "html" {
		t.Errorf("ticket %+v", tk)
	}
	// Nothing recorded, or a link recorded for another ticket: the id
	// alone, as no page of Zoho Desk follows from config.
	for _, prior := range []router.Link{nil, {"id": "1892000000999999", "number": "7", "url": "https://desk.zoho.com/x"}} {
		d.RemoteLink = prior
		res, err := s.Deliver(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		wantLink(t, "follow-up with nothing recorded", res.Link, router.Link{"id": first.RemoteID})
	}
}

// TestZohodeskLinkWithoutWebURL covers a create answered without webUrl
// and ticketNumber: the link has the id alone, no url made up.
func TestZohodeskLinkWithoutWebURL(t *testing.T) {
	f := fakeapi.NewZohoDesk(zohoOrg, zohoClient, zohoSecret, zohoRefresh)
	rec := newDeskRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/tickets" {
			f.ServeHTTP(w, r)
			return
		}
		got := httptest.NewRecorder()
		f.ServeHTTP(got, r)
		var ticket map[string]any
		if err := json.Unmarshal(got.Body.Bytes(), &ticket); err != nil {
			t.Errorf("fake's answer: %v", err)
		}
		delete(ticket, "webUrl")
		delete(ticket, "ticketNumber")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(got.Code)
		_ = json.NewEncoder(w).Encode(ticket)
	}))
	res, err := zohoSinkAt(t, rec.URL, "").Deliver(context.Background(), zohoDelivery())
	if err != nil {
		t.Fatal(err)
	}
	wantLink(t, "create without webUrl", res.Link, router.Link{"id": "1892000000143237"})
}

func TestZohodeskRefreshesOn401(t *testing.T) {
	f, rec := zohoFake(t)
	s := zohoSinkAt(t, rec.URL, "")
	if _, err := s.Deliver(context.Background(), zohoDelivery()); err != nil {
		t.Fatal(err)
	}
	f.ExpireTokens() // revoked or expired early: the Desk answers 401
	before := len(rec.requests("/api/"))
	res, err := s.Deliver(context.Background(), zohoDelivery())
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("after expiry: %v, %+v", err, res)
	}
	if n, m := f.TokenRefreshes(), len(rec.requests("/api/"))-before; n != 2 || m != 2 {
		t.Errorf("%d refreshes, %d Desk requests; want 2 and 2 (401, then the retry)", n, m)
	}
}

// zohoClock is a clock the test moves forward.
type zohoClock struct{ ahead atomic.Int64 }

func (c *zohoClock) now() time.Time       { return time.Now().Add(time.Duration(c.ahead.Load())) }
func (c *zohoClock) skip(d time.Duration) { c.ahead.Add(int64(d)) }

func TestZohodeskRefreshesBeforeExpiry(t *testing.T) {
	f, rec := zohoFake(t)
	s := zohoSinkAt(t, rec.URL, "")
	clock := &zohoClock{}
	s.auth.now = clock.now
	if _, err := s.Deliver(context.Background(), zohoDelivery()); err != nil {
		t.Fatal(err)
	}
	clock.skip(50 * time.Minute) // the token lives 60: still good
	if _, err := s.Deliver(context.Background(), zohoDelivery()); err != nil || f.TokenRefreshes() != 1 {
		t.Fatalf("at 50 minutes: %v, %d refreshes", err, f.TokenRefreshes())
	}
	clock.skip(6 * time.Minute) // within 5 minutes of its end: a new one
	before := len(rec.requests("/api/"))
	if _, err := s.Deliver(context.Background(), zohoDelivery()); err != nil || f.TokenRefreshes() != 2 {
		t.Fatalf("at 56 minutes: %v, %d refreshes", err, f.TokenRefreshes())
	}
	if n := len(rec.requests("/api/")) - before; n != 1 {
		t.Errorf("%d Desk requests; a token refreshed in time is never refused", n)
	}
}

func TestZohodeskSharesOneRefresh(t *testing.T) {
	f := fakeapi.NewZohoDesk(zohoOrg, zohoClient, zohoSecret, zohoRefresh)
	gate := make(chan struct{})
	rec := newDeskRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/v2/token" {
			<-gate
		}
		f.ServeHTTP(w, r)
	}))
	s := zohoSinkAt(t, rec.URL, "")
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Deliver(context.Background(), zohoDelivery())
			errs <- err
		}()
	}
	for deadline := time.Now().Add(2 * time.Second); len(rec.requests("/oauth/")) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others queue behind the refresh
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := f.TokenRefreshes(); got != 1 {
		t.Errorf("%d concurrent deliveries made %d token refreshes, want 1", n, got)
	}
	if got := len(f.Tickets()); got != n {
		t.Errorf("%d tickets, want %d", got, n)
	}
}

func TestZohodeskTokenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct{ secret, refresh, code string }{
		{zohoSecret, "1000.revoked-refresh-0000", "invalid_code"},
		{"zoho-wrong-secret-0000", zohoRefresh, "invalid_client_secret"},
	} {
		f := fakeapi.NewZohoDesk(zohoOrg, zohoClient, zohoSecret, zohoRefresh)
		rec := newDeskRecorder(t, f)
		s := mustBuild(t, "zohodesk", zohoConfig(rec.URL, ""), map[string]string{"ZS": tt.secret, "ZR": tt.refresh})
		res, err := s.Deliver(ctx, zohoDelivery())
		deskWant(t, res, err, 200, true, 0, tt.code)
		if strings.Contains(err.Error(), "0000") {
			t.Errorf("error shows a credential: %v", err)
		}
		if len(rec.requests("/api/")) != 0 {
			t.Error("the Desk was called without a token")
		}
	}

	// Scripted accounts and Desk servers.
	var tokenStatus atomic.Int64
	var tokenBody atomic.Value
	var deskCalls, tokenCalls atomic.Int64
	srv := newDeskRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/v2/token" {
			tokenCalls.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(tokenStatus.Load()))
			_, _ = w.Write([]byte(strings.ReplaceAll(tokenBody.Load().(string), "ECHO", r.URL.RawQuery)))
			return
		}
		deskCalls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errorCode":"INVALID_OAUTH","message":"The OAuth Token you provided is invalid.","echo":"` + r.Header.Get("Authorization") + `"}`))
	}))
	token := func(status int, body string) {
		tokenStatus.Store(int64(status))
		tokenBody.Store(body)
	}

	// Minting too many tokens is answered 400 "Access Denied": it passes.
	token(400, `{"error":"Access Denied","error_description":"You have made too many requests continuously. Please try again after some time.","status":"failure","echo":"ECHO"}`)
	res, err := zohoSinkAt(t, srv.URL, "").Deliver(ctx, zohoDelivery())
	deskWant(t, res, err, 400, false, time.Minute, "too many requests")
	token(503, `{"error":"busy","error_description":"ECHO"}`)
	res, err = zohoSinkAt(t, srv.URL, "").Deliver(ctx, zohoDelivery())
	deskWant(t, res, err, 503, false, 0, "refresh access token: HTTP 503 Service Unavailable: busy: ")
	if strings.Contains(err.Error(), zohoSecret) || strings.Contains(err.Error(), zohoRefresh) || !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("error shows a credential: %v", err)
	}

	// A Desk that refuses every token: one refresh, one retry, then a
	// permanent error without the token in it.
	token(200, `{"access_token":"1000.refused-token-77aa","expires_in":3600}`)
	deskCalls.Store(0)
	tokenCalls.Store(0)
	res, err = zohoSinkAt(t, srv.URL, "").Deliver(ctx, zohoDelivery())
	deskWant(t, res, err, 401, true, 0, "INVALID_OAUTH")
	if strings.Contains(err.Error(), "refused-token") {
		t.Errorf("error shows the access token: %v", err)
	}
	if d, tk := deskCalls.Load(), tokenCalls.Load(); d != 2 || tk != 2 {
		t.Errorf("%d Desk calls and %d token calls, want 2 and 2", d, tk)
	}
}

func TestZohodeskErrors(t *testing.T) {
	f, rec := zohoFake(t)
	s := zohoSinkAt(t, rec.URL, "")
	ctx := context.Background()

	f.Fail(1, http.StatusTooManyRequests, "5")
	res, err := s.Deliver(ctx, zohoDelivery())
	deskWant(t, res, err, 429, false, 5*time.Second, "TOO_MANY_REQUESTS")
	f.Fail(1, http.StatusInternalServerError, "")
	res, err = s.Deliver(ctx, zohoDelivery())
	deskWant(t, res, err, 500, false, 0, "500")
	gone := zohoDelivery()
	gone.RemoteID = "1892000000999999"
	res, err = s.Deliver(ctx, gone)
	deskWant(t, res, err, 404, true, 0, "RESOURCE_NOT_FOUND")
	if len(f.Tickets()) != 0 {
		t.Fatal("a failed request made a ticket")
	}

	other := mustBuild(t, "zohodesk", strings.Replace(zohoConfig(rec.URL, ""), zohoOrg, "60009999999", 1), zohoEnv)
	res, err = other.Deliver(ctx, zohoDelivery())
	deskWant(t, res, err, 400, true, 0, "INVALID_DATA")

	before := len(rec.requests("/"))
	for _, fields := range []map[string]string{
		{"subject": "x"}, // no requester, no contact_id
		{"subject": " ", "requester": "a@b.c", "body": "x"},
		{"subject": "x", "requester": "a@b.c", "public": "no"},
	} {
		if _, err := s.Deliver(ctx, delivery(fields)); !router.IsPermanent(err) {
			t.Errorf("%v: got %v, want a permanent error", fields, err)
		}
	}
	notID := zohoDelivery()
	notID.RemoteID = "1/comments"
	if _, err := s.Deliver(ctx, notID); !router.IsPermanent(err) {
		t.Errorf("remote id %q: %v", notID.RemoteID, err)
	}
	if n := len(rec.requests("/")) - before; n != 0 {
		t.Errorf("%d requests sent for deliveries that cannot work", n)
	}
}

func TestZohodeskFieldsAndEscapes(t *testing.T) {
	specs, _ := testRegistry().RouteFields("zohodesk")
	got := map[string]router.FieldSpec{}
	for _, f := range specs {
		got[f.Name] = f
	}
	for _, n := range []string{"subject", "body", "requester", "requester_name", "priority", "public"} {
		if _, ok := got[n]; !ok {
			t.Errorf("no route field %s", n)
		}
	}
	if e := got["body"].Escape; e == nil || e("<b>") != "&lt;b&gt;" {
		t.Error("body is not escaped for HTML")
	}
	if got["subject"].Escape != nil || got["requester"].Required {
		t.Error("subject is plain text; requester is optional (contact_id)")
	}
}

func TestZohodeskConfig(t *testing.T) {
	env := map[string]string{"ZS": zohoSecret, "ZR": zohoRefresh, "BAD": "a b"}
	full := zohoConfig("https://desk.zoho.eu", "")
	tests := []struct{ snippet, path, msg string }{
		{strings.Replace(full, "org_id: \""+zohoOrg+"\"\n", "", 1), "org_id", "must be set"},
		{strings.Replace(full, zohoOrg, "acme", 1), "org_id", "numeric"},
		{strings.Replace(full, "department_id: \""+zohoDept+"\"\n", "", 1), "department_id", "must be set"},
		{full + "contact_id: ann\n", "contact_id", "numeric"},
		{strings.Replace(full, "client_id: "+zohoClient+"\n", "", 1), "client_id", "must be set"},
		{strings.Replace(full, "${ZS}", "${BAD}", 1), "client_secret", "one word"},
		{strings.Replace(full, "refresh_token: ${ZR}\n", "", 1), "refresh_token", "must be set"},
		{strings.Replace(full, "${ZR}", "1000.in-the-file", 1), "refresh_token", "by reference"},
		{strings.Replace(full, "accounts_url: https://desk.zoho.eu", "accounts_url: accounts.zoho.eu", 1), "accounts_url", "http or https"},
		{strings.Replace(full, "base_url: https://desk.zoho.eu", "base_url: ''", 1) + "scope: x\n", "scope", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "zohodesk", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
	}
	s := mustBuild(t, "zohodesk", "org_id: 60001234567\nclient_id: c1\nclient_secret: ${ZS}\nrefresh_token: ${ZR}\ndepartment_id: 1892000000006907", env).(*zohodeskSink)
	if got := endpoint(s.base, "/api/v1/tickets").String(); got != "https://desk.zoho.com/api/v1/tickets" {
		t.Errorf("default endpoint %s", got)
	}
	if !strings.HasPrefix(s.auth.tokenURL, "https://accounts.zoho.com/oauth/v2/token?") {
		t.Error("default accounts_url is not https://accounts.zoho.com")
	}
	if s.conf.OrgID != "60001234567" {
		t.Errorf("org_id given as a YAML number reads %q", s.conf.OrgID)
	}
}
