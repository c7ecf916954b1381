package sinks

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

const pagerdutyTestKey = "R0123456789abcdef0123456789abcde" // 32 characters, as PagerDuty's

func newPagerDutyFake(t *testing.T) (*fakeapi.PagerDuty, *httptest.Server) {
	t.Helper()
	f := fakeapi.NewPagerDuty(pagerdutyTestKey)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func pagerdutySinkAt(t *testing.T, base string) router.Sink {
	t.Helper()
	return mustBuild(t, "pagerduty", "routing_key: ${PD_ROUTING_KEY}\nbase_url: "+base, map[string]string{"PD_ROUTING_KEY": pagerdutyTestKey})
}

func lastPagerDutyRequest(t *testing.T, f *fakeapi.PagerDuty) fakeapi.PagerDutyRequest {
	t.Helper()
	reqs := f.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request received")
	}
	return reqs[len(reqs)-1]
}

func TestPagerDutyTriggers(t *testing.T) {
	f, srv := newPagerDutyFake(t)
	d := delivery(map[string]string{
		"subject": "Sad chat from Ann", "body": `too slow <b>&</b> "meh"`, "severity": " Warning ",
		"component": "salesiq", "group": "support", "class": "csat",
	})
	d.DedupKey = "salesiq-chat-40526000001808033"
	res, err := pagerdutySinkAt(t, srv.URL).Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 202 || res.RemoteID != d.DedupKey {
		t.Fatalf("Deliver = %+v, %v; want 202 and the dedup key", res, err)
	}
	// The Events API answers no incident page: no url.
	wantLink(t, "trigger", res.Link, router.Link{"id": d.DedupKey, "key": d.DedupKey})
	r := lastPagerDutyRequest(t, f)
	if r.Method != "POST" || r.Path != "/v2/enqueue" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "" {
		t.Errorf("request %s %s %v", r.Method, r.Path, r.Header)
	}
	golden(t, "pagerduty/create.golden", goldenRequestJSON(t, r.Body))
	in, ok := f.Incident(d.DedupKey)
	if !ok || in.State != "triggered" || in.Severity != "warning" || in.Summary != "Sad chat from Ann" {
		t.Fatalf("incident %+v", in)
	}
	pl := in.Events[0].Payload
	if pl.Source != "hookroute" || pl.Component != "salesiq" || pl.CustomDetails["body"] != `too slow <b>&</b> "meh"` {
		t.Errorf("payload %+v", pl)
	}
}

func TestPagerDutyDedupKeyIsDeliveryIDWithoutRouteKey(t *testing.T) {
	f, srv := newPagerDutyFake(t)
	s := pagerdutySinkAt(t, srv.URL)
	d := delivery(map[string]string{"subject": "x"})
	for range 2 { // a retry, or a replay
		res, err := s.Deliver(context.Background(), d)
		if err != nil || res.RemoteID != "dlv-0001" {
			t.Fatalf("Deliver = %+v, %v", res, err)
		}
	}
	if in := f.Incidents(); len(in) != 1 || len(in[0].Events) != 2 {
		t.Fatalf("incidents %+v, want one that absorbed the second trigger", in)
	}
	// A key over 255 characters is hashed, the same way every time.
	d.DedupKey = strings.Repeat("k", 300)
	res, err := s.Deliver(context.Background(), d)
	if err != nil || len(res.RemoteID) > 255 || !strings.HasPrefix(res.RemoteID, "hookroute:") || res.RemoteID != pagerdutyDedupKey(d) {
		t.Fatalf("long key: %+v, %v", res, err)
	}
	wantLink(t, "hashed key", res.Link, router.Link{"id": res.RemoteID, "key": res.RemoteID})
}

func TestPagerDutyFollowUps(t *testing.T) {
	f, srv := newPagerDutyFake(t)
	s := pagerdutySinkAt(t, srv.URL)
	d := delivery(map[string]string{"subject": "Sad chat from Ann", "severity": "critical"})
	d.DedupKey = "salesiq-chat-1"
	first, err := s.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	// The route's next delivery for the key acknowledges: no payload.
	d = delivery(map[string]string{"action": "acknowledge", "subject": "ignored"})
	d.ID, d.DedupKey, d.RemoteID = "dlv-0002", "salesiq-chat-1", first.RemoteID
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.RemoteID != first.RemoteID {
		t.Fatalf("acknowledge = %+v, %v", res, err)
	}
	wantLink(t, "acknowledge", res.Link, router.Link{"id": "salesiq-chat-1", "key": "salesiq-chat-1"})
	golden(t, "pagerduty/followup.golden", goldenRequestJSON(t, lastPagerDutyRequest(t, f).Body))
	if in, _ := f.Incident("salesiq-chat-1"); in.State != "acknowledged" {
		t.Errorf("state %s, want acknowledged", in.State)
	}
	// Trigger again is absorbed; resolve resolves.
	d.Fields = map[string]string{"subject": "Ann again"}
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	d.Fields = map[string]string{"action": "RESOLVE"}
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	in := f.Incidents()
	if len(in) != 1 || in[0].State != "resolved" || len(in[0].Events) != 4 {
		t.Fatalf("incidents %+v", in)
	}
}

func TestPagerDutyFieldsCheckedAfterRendering(t *testing.T) {
	f, srv := newPagerDutyFake(t)
	s := pagerdutySinkAt(t, srv.URL)
	for _, fields := range []map[string]string{
		{"subject": "x", "severity": "high"},
		{"subject": "x", "action": "escalate"},
	} {
		if _, err := s.Deliver(context.Background(), delivery(fields)); !router.IsPermanent(err) {
			t.Errorf("%v: %v, want permanent", fields, err)
		}
	}
	if n := len(f.Requests()); n != 0 {
		t.Errorf("%d requests sent for events that cannot work", n)
	}
	// A trigger whose subject rendered empty still pages, with a plain
	// summary; the summary is cut to PagerDuty's 1,024 characters.
	if _, err := s.Deliver(context.Background(), delivery(map[string]string{"subject": " "})); err != nil {
		t.Fatal(err)
	}
	if in, _ := f.Incident("dlv-0001"); in.Summary != "conversation.rated (hookroute rule sad-chat)" {
		t.Errorf("fallback summary %q", in.Summary)
	}
	d := delivery(map[string]string{"subject": strings.Repeat("é", 2000), "body": strings.Repeat("b", 70000)})
	d.ID = "dlv-0002"
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	in, _ := f.Incident("dlv-0002")
	if utf8.RuneCountInString(in.Summary) != pagerdutyMaxSummary || utf8.RuneCountInString(in.Events[0].Payload.CustomDetails["body"].(string)) != pagerdutyMaxBody {
		t.Errorf("summary %d runes", utf8.RuneCountInString(in.Summary))
	}
}

func TestPagerDutyErrors(t *testing.T) {
	tests := []struct {
		name, retryAfter string
		status           int
		permanent        bool
		after            time.Duration
	}{
		{"429 without Retry-After", "", 429, false, pagerdutyMinWait},
		{"429 with a longer Retry-After", "120", 429, false, 2 * time.Minute},
		{"500", "", 500, false, 0},
		{"503", "", 503, false, 0},
		{"404", "", 404, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newPagerDutyFake(t)
			f.Fail(1, tt.status, tt.retryAfter)
			res, err := pagerdutySinkAt(t, srv.URL).Deliver(context.Background(), delivery(map[string]string{"subject": "x"}))
			if err == nil || router.IsPermanent(err) != tt.permanent || res.StatusCode != tt.status || router.RetryAfterOf(err) != tt.after {
				t.Fatalf("Deliver = %d, %v (after %v); want %d, permanent=%v, after %v", res.StatusCode, err, router.RetryAfterOf(err), tt.status, tt.permanent, tt.after)
			}
		})
	}
	// A wrong routing key: PagerDuty's 400 is permanent, its reasons are
	// shown, the key is not.
	_, srv := newPagerDutyFake(t)
	wrong := "Wwrongwrongwrongwrongwrongwrong1"
	s := mustBuild(t, "pagerduty", "routing_key: ${K}\nbase_url: "+srv.URL, map[string]string{"K": wrong})
	res, err := s.Deliver(context.Background(), delivery(map[string]string{"subject": "x"}))
	if !router.IsPermanent(err) || res.StatusCode != 400 || !strings.Contains(err.Error(), "invalid event: Event object is invalid ('routing_key' is invalid)") || strings.Contains(err.Error(), "wrongwrong") {
		t.Errorf("wrong key: %d %v", res.StatusCode, err)
	}
}

func TestPagerDutyRouteFields(t *testing.T) {
	specs, ok := testRegistry().RouteFields("pagerduty")
	if !ok {
		t.Fatal("pagerduty not registered")
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		if s.Required || s.Escape != nil {
			t.Errorf("%s: required %v, escape %v; want neither", s.Name, s.Required, s.Escape != nil)
		}
	}
	if got := strings.Join(names, ","); got != "subject,body,severity,action,source,component,group,class" {
		t.Errorf("fields %s", got)
	}
}

func TestPagerDutyConfig(t *testing.T) {
	env := map[string]string{"K": pagerdutyTestKey, "BAD": "a key"}
	tests := []struct{ snippet, path, msg string }{
		{"base_url: https://events.pagerduty.com", "routing_key", "must be set"},
		{"routing_key: ${BAD}", "routing_key", "spaces"},
		{"routing_key: R0123456789abcdef0123456789abcde", "routing_key", "by reference"},
		{"routing_key: ${K}\nbase_url: events.pagerduty.com", "base_url", "http or https"},
		{"routing_key: ${K}\nservice_key: x", "service_key", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "pagerduty", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
	}
	s := mustBuild(t, "pagerduty", "routing_key: ${K}", env).(*pagerdutySink)
	if s.url.String() != "https://events.pagerduty.com/v2/enqueue" {
		t.Errorf("default endpoint %s", s.url)
	}
	// Acknowledge and resolve events carry no payload.
	var ev map[string]any
	b, _ := json.Marshal(&pagerdutyEvent{RoutingKey: "k", EventAction: "resolve", DedupKey: "d"})
	if err := json.Unmarshal(b, &ev); err != nil || ev["payload"] != nil {
		t.Errorf("resolve event %s", b)
	}
}
