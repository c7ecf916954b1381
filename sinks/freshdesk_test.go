package sinks

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

const fdKey = "fd-api-key-9b2e41"

func freshdeskFake(t *testing.T) (*fakeapi.Freshdesk, *deskRecorder) {
	f := fakeapi.NewFreshdesk(fdKey)
	return f, newDeskRecorder(t, f)
}

func freshdeskSinkAt(t *testing.T, url string) router.Sink {
	t.Helper()
	return mustBuild(t, "freshdesk", "domain: acme\napi_key: ${FD_KEY}\nbase_url: "+url, map[string]string{"FD_KEY": fdKey})
}

// freshdeskDelivery has a body as the router renders it: interpolated
// values escaped for HTML.
func freshdeskDelivery() *router.Delivery {
	return delivery(map[string]string{
		"subject": "Sad chat from Ann <3", "body": "Ann rated the chat sad.\r\nFeedback: " + escapeHTML(`too slow <b>&</b> "meh"`),
		"requester": "ann@example.com", "requester_name": "Ann Smith", "priority": "High", "tags": "salesiq,csat-sad",
	})
}

func TestFreshdeskCreate(t *testing.T) {
	f, rec := freshdeskFake(t)
	s := freshdeskSinkAt(t, rec.URL)
	res, err := s.Deliver(context.Background(), freshdeskDelivery())
	if err != nil || res.StatusCode != 201 || res.RemoteID != "1" {
		t.Fatalf("Deliver: %v, %+v", err, res)
	}
	wantLink(t, "create", res.Link, router.Link{"id": "1", "number": "1", "url": "https://acme.freshdesk.com/a/tickets/1"})
	r := rec.last(t, "/")
	if got, want := r.header.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte(fdKey+":X")); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	deskGolden(t, "freshdesk/create.golden", r)
	tk := f.Tickets()
	if len(tk) != 1 || tk[0].Email != "ann@example.com" || tk[0].Priority != 3 || tk[0].Status != 2 || tk[0].Subject != "Sad chat from Ann <3" ||
		tk[0].Description != "Ann rated the chat sad.<br>Feedback: too slow &lt;b&gt;&amp;&lt;/b&gt; &#34;meh&#34;" {
		t.Errorf("tickets %+v", tk)
	}
	// Priorities by name or number; none leaves Freshdesk's default.
	for _, p := range []struct {
		in   string
		want int
	}{{"urgent", 4}, {" 2 ", 2}, {"", 1}} {
		d := freshdeskDelivery()
		d.Fields["priority"] = p.in
		if _, err := s.Deliver(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		if tk := f.Tickets(); tk[len(tk)-1].Priority != p.want {
			t.Errorf("priority %q gave %d, want %d", p.in, tk[len(tk)-1].Priority, p.want)
		}
	}
}

func TestFreshdeskFollowUp(t *testing.T) {
	f, rec := freshdeskFake(t)
	s := freshdeskSinkAt(t, rec.URL)
	first, err := s.Deliver(context.Background(), freshdeskDelivery())
	if err != nil {
		t.Fatal(err)
	}
	d := freshdeskDelivery()
	d.ID, d.RemoteID, d.Fields["body"] = "dlv-0002", first.RemoteID, "Ann chatted again:\n"+escapeHTML("<i>still</i> slow")
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 201 || res.RemoteID != first.RemoteID {
		t.Fatalf("follow-up: %v, %+v", err, res)
	}
	wantLink(t, "follow-up", res.Link, router.Link{"id": "1", "number": "1", "url": "https://acme.freshdesk.com/a/tickets/1"})
	deskGolden(t, "freshdesk/followup.golden", rec.last(t, "/"))
	d.Fields["public"] = "true"
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	tk := f.Tickets()
	if len(tk) != 1 || len(tk[0].Notes) != 2 || !tk[0].Notes[0].Private || tk[0].Notes[1].Private ||
		tk[0].Notes[0].Body != "Ann chatted again:<br>&lt;i&gt;still&lt;/i&gt; slow" {
		t.Errorf("ticket %+v", tk)
	}
}

func TestFreshdeskErrors(t *testing.T) {
	f, rec := freshdeskFake(t)
	s := freshdeskSinkAt(t, rec.URL)
	ctx := context.Background()

	f.Fail(1, http.StatusTooManyRequests, "30")
	res, err := s.Deliver(ctx, freshdeskDelivery())
	deskWant(t, res, err, 429, false, 30*time.Second, "too_many_requests")
	f.Fail(1, http.StatusBadGateway, "")
	res, err = s.Deliver(ctx, freshdeskDelivery())
	deskWant(t, res, err, 502, false, 0, "502")
	if len(f.Tickets()) != 0 {
		t.Fatal("a failed request made a ticket")
	}
	bad := freshdeskDelivery()
	bad.Fields["requester"] = "ann at example"
	res, err = s.Deliver(ctx, bad)
	deskWant(t, res, err, 400, true, 0, "Validation failed: email: It should be a valid email address")
	gone := freshdeskDelivery()
	gone.RemoteID = "404"
	res, err = s.Deliver(ctx, gone)
	deskWant(t, res, err, 404, true, 0, "404 Not Found")
	if res.Link != nil {
		t.Errorf("a failed note links ticket %v", res.Link)
	}

	wrong := mustBuild(t, "freshdesk", "domain: acme\napi_key: ${K}\nbase_url: "+rec.URL, map[string]string{"K": "fd-wrong-key-5678"})
	res, err = wrong.Deliver(ctx, freshdeskDelivery())
	deskWant(t, res, err, 401, true, 0, "invalid_credentials")
	if strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("error shows the key: %v", err)
	}

	before := len(rec.requests("/"))
	for _, fields := range []map[string]string{
		{"subject": "x", "requester": " "},
		{"subject": "x", "requester": "a@b.c", "priority": "critical"},
		{"subject": "x", "requester": "a@b.c", "priority": "5"},
		{"subject": "x", "requester": "a@b.c", "public": "maybe"},
		{"subject": "", "requester": "a@b.c", "body": "x"},
	} {
		if _, err := s.Deliver(ctx, delivery(fields)); !router.IsPermanent(err) {
			t.Errorf("%v: got %v, want a permanent error", fields, err)
		}
	}
	_, err = s.Deliver(ctx, delivery(map[string]string{"subject": "x"}))
	if err == nil || !strings.Contains(err.Error(), "freshdesk needs a requester") {
		t.Errorf("no requester: %v", err)
	}
	if n := len(rec.requests("/")) - before; n != 0 {
		t.Errorf("%d requests sent for deliveries that cannot work", n)
	}
}

func TestFreshdeskLimits(t *testing.T) {
	f, rec := freshdeskFake(t)
	s := freshdeskSinkAt(t, rec.URL)
	d := delivery(map[string]string{"subject": strings.Repeat("ö", 300), "requester": "a@b.c",
		"body": strings.Repeat(escapeHTML("<€>")+"\n", 10000)})
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	tk := f.Tickets()[0]
	if n := utf8.RuneCountInString(tk.Subject); n != freshdeskMaxSubject {
		t.Errorf("subject is %d runes", n)
	}
	desc := tk.Description
	if len(desc) > freshdeskMaxBody || !utf8.ValidString(desc) || !strings.HasSuffix(desc, "<br>…") && !strings.HasSuffix(desc, "&gt;…") && !strings.HasSuffix(desc, "€…") {
		t.Errorf("description is %d bytes, ends %q", len(desc), desc[len(desc)-12:])
	}
}

func TestDeskHTML(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"a\nb\r\nc", 100, "a<br>b<br>c"},
		{"abc &amp; def", 10, "abc …"},            // not "abc &am…"
		{"abc\ndefgh", 8, "abc…"},                 // not "abc<b…"
		{"abc\ndefgh", 10, "abc<br>…"},            // whole tags stay
		{"abc &amp; d", 13, "abc &amp; d"},        // fits
		{"ab &lt;x&gt; yz", 14, "ab &lt;x…"},      // not "ab &lt;x&gt…"
		{"ab &lt;x&gt; yzw", 15, "ab &lt;x&gt;…"}, // whole entities stay
		{"€€€€", 9, "€€…"},
	}
	for _, tt := range tests {
		if got := deskHTML(tt.in, tt.max); got != tt.want || len(got) > tt.max {
			t.Errorf("deskHTML(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestFreshdeskFieldsAndEscapes(t *testing.T) {
	specs, _ := testRegistry().RouteFields("freshdesk")
	got := map[string]router.FieldSpec{}
	for _, f := range specs {
		got[f.Name] = f
	}
	if !got["subject"].Required || !got["requester"].Required {
		t.Error("subject and requester must be required")
	}
	if e := got["body"].Escape; e == nil || e(`<script>"x"&`) != "&lt;script&gt;&#34;x&#34;&amp;" {
		t.Error("body is not escaped for HTML")
	}
	for _, n := range []string{"subject", "requester", "requester_name", "priority", "tags", "public"} {
		if got[n].Escape != nil {
			t.Errorf("%s is escaped; it is not HTML", n)
		}
	}
}

func TestFreshdeskConfig(t *testing.T) {
	env := map[string]string{"K": fdKey, "BAD": "a:b"}
	tests := []struct{ snippet, path, msg string }{
		{"api_key: ${K}", "domain", "must be set"},
		{"domain: acme.freshdesk.com\napi_key: ${K}", "domain", "name only"},
		{"domain: acme\napi_key: ${K}\nbase_url: http://u:p@x/", "base_url", "user or password"},
		{"domain: acme", "api_key", "must be set"},
		{"domain: acme\napi_key: ${BAD}", "api_key", "without ':'"},
		{"domain: acme\napi_key: fd-in-the-file", "api_key", "by reference"},
		{"domain: acme\napi_key: ${K}\npassword: X", "password", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "freshdesk", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
	}
	s := mustBuild(t, "freshdesk", "domain: acme\napi_key: ${K}", env).(*freshdeskSink)
	if got := endpoint(s.base, "/api/v2/tickets").String(); got != "https://acme.freshdesk.com/api/v2/tickets" {
		t.Errorf("default endpoint %s", got)
	}
}

func TestFreshdeskLinkWithoutDomain(t *testing.T) {
	_, rec := freshdeskFake(t)
	s := mustBuild(t, "freshdesk", "api_key: ${FD_KEY}\nbase_url: "+rec.URL+"/", map[string]string{"FD_KEY": fdKey})
	res, err := s.Deliver(context.Background(), freshdeskDelivery())
	if err != nil {
		t.Fatal(err)
	}
	// Without a domain, base_url is where agents open tickets.
	wantLink(t, "create without a domain", res.Link, router.Link{"id": "1", "number": "1", "url": rec.URL + "/a/tickets/1"})
}
