package sinks

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

const (
	snowTestUser     = "svc.hookroute"
	snowTestPassword = "sn-pass-7c6b5a49"
)

func snowFake(t *testing.T) (*fakeapi.ServiceNow, *requestTap) {
	f := fakeapi.NewServiceNow(snowTestUser, snowTestPassword)
	return f, newRequestTap(t, f)
}

func snowSinkAt(t *testing.T, base, extra string) router.Sink {
	t.Helper()
	return mustBuild(t, "servicenow", "base_url: "+base+"\nusername: "+snowTestUser+"\npassword: ${SN_PASSWORD}\n"+extra,
		map[string]string{"SN_PASSWORD": snowTestPassword})
}

func snowDelivery() *router.Delivery {
	return delivery(map[string]string{
		"subject": "Sad chat from Ann\n(rated 1/5)",
		"body":    "Feedback:\r\ntoo slow <b>x</b> [\u200bcode]y[\u200b/code]\x00\n",
		"urgency": " 2 ",
		"impact":  "3",
	})
}

func TestServiceNowCreate(t *testing.T) {
	f, tap := snowFake(t)
	s := snowSinkAt(t, tap.URL, "caller_id: 681ccaf9c0a8016400b98a06818d57c7\nassignment_group: Service Desk")
	res, err := s.Deliver(context.Background(), snowDelivery())
	if err != nil {
		t.Fatal(err)
	}
	recs := f.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	rec := recs[0]
	if res.StatusCode != 201 || res.RemoteID != rec.SysID || len(rec.SysID) != 32 || rec.Number != "INC0010001" {
		t.Errorf("result %+v, record %+v", res, rec)
	}
	// Without an instance, base_url is where people open records.
	wantLink(t, "create", res.Link, router.Link{"id": rec.SysID, "number": "INC0010001", "url": tap.URL + "/nav_to.do?uri=incident.do?sys_id=" + rec.SysID})
	req := tap.last(t)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(snowTestUser+":"+snowTestPassword))
	if req.Header.Get("Authorization") != basic || req.Header.Get("Accept") != "application/json" || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", req.Header)
	}
	golden(t, "servicenow/create.golden", req.text(t))
	want := fakeapi.ServiceNowRecord{
		Table: "incident", SysID: rec.SysID, Number: "INC0010001",
		ShortDescription: "Sad chat from Ann (rated 1/5)",
		Description:      "Feedback:\ntoo slow <b>x</b> [\u200bcode]y[\u200b/code]",
		Urgency:          "2", Impact: "3", CallerID: "681ccaf9c0a8016400b98a06818d57c7", AssignmentGroup: "Service Desk",
		CorrelationID: "dlv-0001",
	}
	if rec.Table != want.Table || rec.ShortDescription != want.ShortDescription || rec.Description != want.Description || rec.Urgency != want.Urgency ||
		rec.Impact != want.Impact || rec.CallerID != want.CallerID || rec.AssignmentGroup != want.AssignmentGroup || rec.CorrelationID != want.CorrelationID {
		t.Errorf("record\n got %+v\nwant %+v", rec, want)
	}
	if got := f.Requests(); !slices.Equal(got, []string{"POST /api/now/table/incident"}) {
		t.Errorf("a first attempt sent %v; want the create alone", got)
	}
}

func TestServiceNowFollowUp(t *testing.T) {
	f, tap := snowFake(t)
	s := snowSinkAt(t, tap.URL, "instance: acme")
	d := snowDelivery()
	d.DedupKey = "chat-40526"
	res, err := s.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	sysID := res.RemoteID
	// An instance names where people open records, whatever base_url
	// the API is reached through.
	link := router.Link{"id": sysID, "number": "INC0010001", "url": "https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id=" + sysID}
	wantLink(t, "create", res.Link, link)
	d = delivery(map[string]string{"subject": "Ann rated again", "body": "Now: 5/5\nthanks"})
	d.DedupKey, d.RemoteID = "chat-40526", sysID
	res, err = s.Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 200 || res.RemoteID != sysID {
		t.Fatalf("follow-up: %v %+v", err, res)
	}
	wantLink(t, "follow-up", res.Link, link) // the number from the PATCH's answer
	req := tap.last(t)
	req.URI = strings.Replace(req.URI, sysID, "{sys_id}", 1) // sys_ids are the fake's choice
	golden(t, "servicenow/followup.golden", req.text(t))
	// Without a body, the subject is the note.
	d.Fields = map[string]string{"subject": "Ann rated again", "body": "\n"}
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	rec := f.Records()[0]
	if !slices.Equal(rec.WorkNotes, []string{"Now: 5/5\nthanks", "Ann rated again"}) || rec.CorrelationID != "chat-40526" || len(f.Records()) != 1 {
		t.Errorf("record %+v", rec)
	}
}

func TestServiceNowTableAndOAuth(t *testing.T) {
	f, tap := snowFake(t)
	f.AcceptBearer("sn-oauth-token-31")
	s := mustBuild(t, "servicenow", "base_url: "+tap.URL+"/\noauth_token: ${T}\ntable: sc_task", map[string]string{"T": "sn-oauth-token-31"})
	res, err := s.Deliver(context.Background(), snowDelivery())
	if err != nil {
		t.Fatal(err)
	}
	req := tap.last(t)
	if req.URI != "/api/now/table/sc_task" || req.Header.Get("Authorization") != "Bearer sn-oauth-token-31" {
		t.Errorf("%s with %q", req.URI, req.Header.Get("Authorization"))
	}
	wantLink(t, "create in sc_task", res.Link, router.Link{"id": res.RemoteID, "number": "REC0010001", "url": tap.URL + "/nav_to.do?uri=sc_task.do?sys_id=" + res.RemoteID})
	d := snowDelivery()
	d.RemoteID = res.RemoteID
	follow, err := s.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if req := tap.last(t); req.Method != "PATCH" || req.URI != "/api/now/table/sc_task/"+res.RemoteID {
		t.Errorf("follow-up %s %s", req.Method, req.URI)
	}
	wantLink(t, "follow-up in sc_task", follow.Link, res.Link)
}

func TestServiceNowErrors(t *testing.T) {
	f, tap := snowFake(t)
	s := snowSinkAt(t, tap.URL, "")
	res, err := s.Deliver(context.Background(), snowDelivery())
	if err != nil {
		t.Fatal(err)
	}
	sysID := res.RemoteID
	tests := []struct {
		name      string
		script    func()
		fields    map[string]string
		remote    string
		code      int
		permanent bool
		after     time.Duration
		text      string
	}{
		{"rate limited", func() { f.Fail(1, 429, "7") }, nil, "", 429, false, 7 * time.Second, "Too Many Requests"},
		{"server error", func() { f.Fail(1, 500, "") }, nil, "", 500, false, 0, "500"},
		{"no such record", nil, nil, "0123456789abcdef0123456789abcdef", 404, true, 0, "No Record found: Record doesn't exist"},
		{"note rate limited", func() { f.Fail(1, 429, "3") }, nil, sysID, 429, false, 3 * time.Second, "429"},
		{"bad urgency", nil, map[string]string{"subject": "x", "urgency": "high"}, "", 0, true, 0, `urgency rendered "high"`},
		{"bad impact", nil, map[string]string{"subject": "x", "impact": "0"}, "", 0, true, 0, "want 1, 2 or 3"},
		{"empty subject", nil, map[string]string{"subject": "\n"}, "", 0, true, 0, "subject rendered empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.script != nil {
				tt.script()
			}
			d := snowDelivery()
			if tt.fields != nil {
				d.Fields = tt.fields
			}
			d.RemoteID = tt.remote
			res, err := s.Deliver(context.Background(), d)
			if err == nil || router.IsPermanent(err) != tt.permanent {
				t.Fatalf("got %v, want permanent=%v", err, tt.permanent)
			}
			if res.StatusCode != tt.code || router.RetryAfterOf(err) != tt.after || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got %d, %v, %q; want %d, %v, %q", res.StatusCode, router.RetryAfterOf(err), err, tt.code, tt.after, tt.text)
			}
		})
	}
	if n := len(f.Records()); n != 1 {
		t.Errorf("%d records after failures, want 1", n)
	}
	// A wrong password is permanent, and no form of it is printed.
	wrong := mustBuild(t, "servicenow", "base_url: "+tap.URL+"\nusername: "+snowTestUser+"\npassword: ${P}", map[string]string{"P": "wrong-pass-1234"})
	_, err = wrong.Deliver(context.Background(), snowDelivery())
	b64 := base64.StdEncoding.EncodeToString([]byte(snowTestUser + ":wrong-pass-1234"))
	if !router.IsPermanent(err) || !strings.Contains(err.Error(), "User Not Authenticated") || strings.Contains(err.Error(), "wrong-pass") || strings.Contains(err.Error(), b64) {
		t.Errorf("wrong password: %v", err)
	}
}

func TestServiceNowRetryAfterTimeoutFindsTheRecord(t *testing.T) {
	f, tap := snowFake(t)
	s := snowSinkAt(t, tap.URL, "")
	f.DelayNextCreate(time.Minute) // the record exists, the answer never comes in time
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	d := snowDelivery()
	_, err := s.Deliver(ctx, d)
	if err == nil || router.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out create: %v, want a retryable deadline error", err)
	}
	recs := f.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records after the timed-out create, want 1", len(recs))
	}
	d.Attempt = 2
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.RemoteID != recs[0].SysID || res.StatusCode != 200 {
		t.Fatalf("retry: %v %+v", err, res)
	}
	wantLink(t, "record found", res.Link, router.Link{"id": recs[0].SysID, "number": "INC0010001", "url": tap.URL + "/nav_to.do?uri=incident.do?sys_id=" + recs[0].SysID})
	if n := len(f.Records()); n != 1 {
		t.Errorf("%d records after the retry: it created a second one", n)
	}
	search := tap.last(t)
	u, err := url.Parse(search.URI)
	if err != nil || search.Method != "GET" || u.Path != "/api/now/table/incident" {
		t.Fatalf("last request %s %s, want the query", search.Method, search.URI)
	}
	if q := u.Query(); q.Get("sysparm_query") != "correlation_id=dlv-0001" || q.Get("sysparm_limit") != "1" || q.Get("sysparm_fields") != "sys_id,number" {
		t.Errorf("query %v", q)
	}
}

func TestServiceNowRetrySearchesThenCreates(t *testing.T) {
	f, tap := snowFake(t)
	s := snowSinkAt(t, tap.URL, "")
	d := snowDelivery()
	d.Attempt = 2
	f.Fail(1, 503, "")
	if _, err := s.Deliver(context.Background(), d); err == nil || router.IsPermanent(err) || !strings.Contains(err.Error(), "created earlier") {
		t.Fatalf("failed query: %v, want a retryable error", err)
	}
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 201 || res.RemoteID == "" {
		t.Fatalf("%v %+v", err, res)
	}
	want := []string{"GET /api/now/table/incident", "GET /api/now/table/incident", "POST /api/now/table/incident"}
	if got := f.Requests(); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
}

func TestServiceNowCorrelationID(t *testing.T) {
	long := strings.Repeat("k", 101)
	for _, tt := range []struct{ id, key, want string }{
		{"d_ABC123", "", "d_ABC123"},
		{"d_ABC123", "salesiq:chat/40526@acme.example", "salesiq:chat/40526@acme.example"},
		{"d_ABC123", "a^ORshort_descriptionLIKEx", "hookroute-"},
		{"d_ABC123", "two words", "hookroute-"},
		{"d_ABC123", long, "hookroute-"},
	} {
		got := snowCorrelationID(&router.Delivery{ID: tt.id, DedupKey: tt.key})
		if got != tt.want && !(strings.HasSuffix(tt.want, "-") && strings.HasPrefix(got, tt.want) && len(got) == len(tt.want)+32) {
			t.Errorf("%q/%q: got %q, want %q", tt.id, tt.key, got, tt.want)
		}
	}
	if a, b := snowCorrelationID(&router.Delivery{DedupKey: "a b"}), snowCorrelationID(&router.Delivery{DedupKey: "a  b"}); a == b {
		t.Error("two keys share a correlation id")
	}
}

func TestServiceNowFieldsAndLimits(t *testing.T) {
	specs, _ := testRegistry().RouteFields("servicenow")
	esc := map[string]func(string) string{}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		esc[s.Name] = s.Escape
	}
	if !slices.Equal(names, []string{"subject", "body", "urgency", "impact"}) || esc["subject"] != nil || esc["urgency"] != nil {
		t.Errorf("fields %v", names)
	}
	if got := esc["body"]("[code]<img src=x>[/CODE] [Code]"); got != "[\u200bcode]<img src=x>[\u200b/CODE] [\u200bCode]" {
		t.Errorf("body escape: %q", got)
	}
	f, tap := snowFake(t)
	s := snowSinkAt(t, tap.URL, "")
	_, err := s.Deliver(context.Background(), delivery(map[string]string{"subject": strings.Repeat("ü ", 200), "body": strings.Repeat("ä", 5000)}))
	if err != nil {
		t.Fatal(err)
	}
	rec := f.Records()[0]
	if n := utf8.RuneCountInString(rec.ShortDescription); n != snowMaxShort || !strings.HasSuffix(rec.ShortDescription, "…") {
		t.Errorf("short_description of %d runes", n)
	}
	if n := utf8.RuneCountInString(rec.Description); n != snowMaxText {
		t.Errorf("description of %d runes", n)
	}
}

func TestServiceNowConfig(t *testing.T) {
	env := map[string]string{"P": snowTestPassword, "NL": "a\nb", "SP": "a b"}
	auth := "\nusername: svc\npassword: ${P}"
	tests := []struct{ snippet, path, msg string }{
		{"instance: acme", "password", "or oauth_token"},
		{"instance: acme\nusername: svc", "password", "must be set with username"},
		{"instance: acme\npassword: ${P}", "username", "must be set"},
		{"instance: acme\nusername: 'a:b'\npassword: ${P}", "username", "without ':'"},
		{"instance: acme\nusername: svc\npassword: ${NL}", "password", "one line"},
		{"instance: acme\nusername: svc\npassword: written-here", "password", "by reference"},
		{"instance: acme\noauth_token: ${P}" + auth, "oauth_token", "not both"},
		{"instance: acme\noauth_token: ${SP}", "oauth_token", "one word"},
		{"username: svc\npassword: ${P}", "instance", "must be set"},
		{"instance: acme.service-now.com" + auth, "instance", "name only"},
		{"instance: acme.service-now.com\nbase_url: https://proxy.example/sn" + auth, "instance", "name only"},
		{"base_url: ftp://x/" + auth, "base_url", "http or https"},
		{"instance: acme\ntable: 'incident/x'" + auth, "table", "table name"},
		{"instance: acme\ntable: ''" + auth, "table", "table name"},
		{"instance: acme\nurgency: 1" + auth, "urgency", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "servicenow", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
		if err != nil && strings.Contains(err.Error(), snowTestPassword) {
			t.Errorf("config error quotes the password: %v", err)
		}
	}
	s := mustBuild(t, "servicenow", "instance: Acme-Dev"+auth, env).(*serviceNowSink)
	if s.base.String() != "https://acme-dev.service-now.com" || s.conf.Table != "incident" {
		t.Errorf("base %s, table %q", s.base, s.conf.Table)
	}
}

// TestServiceNowLinkEscapes checks that a sys_id, which comes from an
// answer or the store, cannot break out of the form's URI: it reads back
// as itself through both levels of query.
func TestServiceNowLinkEscapes(t *testing.T) {
	s := mustBuild(t, "servicenow", "instance: acme\nusername: svc\npassword: ${P}", map[string]string{"P": snowTestPassword}).(*serviceNowSink)
	odd := "a&b=c?d#e%f g"
	link := s.link(odd, "INC 1")
	if _, ok := link["number"]; ok {
		t.Errorf("number %q with a space kept", link["number"])
	}
	u, err := url.Parse(link["url"])
	if err != nil || u.Host != "acme.service-now.com" || u.Path != "/nav_to.do" || u.Fragment != "" {
		t.Fatalf("url %q: %v", link["url"], err)
	}
	inner, err := url.Parse(u.Query().Get("uri"))
	if err != nil || inner.Path != "incident.do" || inner.Query().Get("sys_id") != odd || len(u.Query()) != 1 {
		t.Errorf("url %q reads back as uri %q", link["url"], u.Query().Get("uri"))
	}
}

// TestServiceNowNoteAnsweredWithoutRecord covers a work note whose
// answer holds no record: the note is in, so no error (a retry would add
// it twice), and the link keeps the number recorded with the record.
func TestServiceNowNoteAnsweredWithoutRecord(t *testing.T) {
	f := fakeapi.NewServiceNow(snowTestUser, snowTestPassword)
	tap := newRequestTap(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPatch {
			f.ServeHTTP(w, r)
			return
		}
		f.ServeHTTP(httptest.NewRecorder(), r)
		w.WriteHeader(http.StatusOK) // and no body
	}))
	s := snowSinkAt(t, tap.URL, "")
	res, err := s.Deliver(context.Background(), snowDelivery())
	if err != nil {
		t.Fatal(err)
	}
	d := snowDelivery()
	d.RemoteID, d.RemoteLink = res.RemoteID, res.Link
	follow, err := s.Deliver(context.Background(), d)
	if err != nil || len(f.Records()[0].WorkNotes) != 1 {
		t.Fatalf("note: %v, %+v", err, f.Records())
	}
	wantLink(t, "note answered without the record", follow.Link, res.Link)
	d.RemoteLink = nil
	if follow, err = s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	wantLink(t, "nothing recorded", follow.Link, router.Link{"id": res.RemoteID, "url": res.Link["url"]})
}
