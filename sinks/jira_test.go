package sinks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

// requestTap serves a vendor fake and keeps a copy of every request, for
// golden files and header checks. The ticket sink tests share it.
type requestTap struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []tappedRequest
}

type tappedRequest struct {
	Method, URI string
	Header      http.Header
	Body        []byte
}

func newRequestTap(t *testing.T, h http.Handler) *requestTap {
	tp := &requestTap{}
	tp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tp.mu.Lock()
		tp.reqs = append(tp.reqs, tappedRequest{r.Method, r.URL.RequestURI(), r.Header.Clone(), body})
		tp.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(tp.Close)
	return tp
}

func (tp *requestTap) last(t *testing.T) tappedRequest {
	t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if len(tp.reqs) == 0 {
		t.Fatal("no request received")
	}
	return tp.reqs[len(tp.reqs)-1]
}

// text shows a request for a golden file: the request line, then the
// JSON body indented.
func (r tappedRequest) text(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(r.Method + " " + r.URI + "\n")
	if len(r.Body) > 0 {
		b.WriteString("\n")
		if err := json.Indent(&b, r.Body, "", "  "); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

const (
	jiraTestEmail = "bot@acme.example"
	jiraTestToken = "ATATT3x-jira-token-5e4d"
)

func jiraFake(t *testing.T) (*fakeapi.Jira, *requestTap) {
	f := fakeapi.NewJira(jiraTestEmail, jiraTestToken)
	return f, newRequestTap(t, f)
}

func jiraSinkAt(t *testing.T, base, extra string) router.Sink {
	t.Helper()
	return mustBuild(t, "jira", "base_url: "+base+"\nemail: "+jiraTestEmail+"\napi_token: ${JIRA_API_TOKEN}\nproject: SUP\n"+extra,
		map[string]string{"JIRA_API_TOKEN": jiraTestToken})
}

// jiraTestMarker computes the dedup label independently of the sink.
func jiraTestMarker(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "hookroute-" + hex.EncodeToString(sum[:])[:16]
}

func jiraDelivery() *router.Delivery {
	return delivery(map[string]string{
		"subject":  "Sad chat from Ann\n(rated 1/5)",
		"body":     "Feedback:\r\ntoo slow *bold* <b>x</b>\n\n{code}x{code} [link|http://x]\n\n\n\x1b[31mred\x1b[0m",
		"labels":   "salesiq, csat sad ,salesiq,",
		"priority": "High",
	})
}

func TestJiraCreate(t *testing.T) {
	f, tap := jiraFake(t)
	res, err := jiraSinkAt(t, tap.URL, "issue_type: Bug").Deliver(context.Background(), jiraDelivery())
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 201 || res.RemoteID != "SUP-1" {
		t.Errorf("result %+v", res)
	}
	// Without a site, base_url is where people open issues.
	wantLink(t, "create", res.Link, router.Link{"id": "SUP-1", "key": "SUP-1", "url": tap.URL + "/browse/SUP-1"})
	req := tap.last(t)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(jiraTestEmail+":"+jiraTestToken))
	if req.Header.Get("Authorization") != basic || req.Header.Get("Accept") != "application/json" || req.Header.Get("User-Agent") != "hookroute" {
		t.Errorf("headers %v", req.Header)
	}
	golden(t, "jira/create.golden", req.text(t))
	issues := f.Issues()
	if len(issues) != 1 {
		t.Fatalf("%d issues", len(issues))
	}
	is := issues[0]
	want := fakeapi.JiraIssue{
		ID: "10000", Key: "SUP-1", Project: "SUP", IssueType: "Bug", Priority: "High",
		Summary:     "Sad chat from Ann (rated 1/5)",
		Description: "Feedback:\ntoo slow *bold* <b>x</b>\n\n{code}x{code} [link|http://x]\n\n[31mred[0m",
		Labels:      []string{"salesiq", "csat-sad", jiraTestMarker("dlv-0001")},
	}
	if is.ID != want.ID || is.Key != want.Key || is.Project != want.Project || is.IssueType != want.IssueType || is.Priority != want.Priority ||
		is.Summary != want.Summary || is.Description != want.Description || !slices.Equal(is.Labels, want.Labels) {
		t.Errorf("issue\n got %+v\nwant %+v", is, want)
	}
	if got := f.Requests(); !slices.Equal(got, []string{"POST /rest/api/3/issue"}) {
		t.Errorf("a first attempt sent %v; want the create alone", got)
	}
}

func TestJiraFollowUp(t *testing.T) {
	f, tap := jiraFake(t)
	s := jiraSinkAt(t, tap.URL, "site: acme")
	d := jiraDelivery()
	d.DedupKey = "chat-40526"
	res, err := s.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	// A site names where people open issues, whatever base_url the API
	// is reached through.
	link := router.Link{"id": "SUP-1", "key": "SUP-1", "url": "https://acme.atlassian.net/browse/SUP-1"}
	wantLink(t, "create", res.Link, link)
	d = delivery(map[string]string{"subject": "Ann rated again", "body": "Now: 5/5\nthanks"})
	d.DedupKey, d.RemoteID = "chat-40526", "SUP-1"
	res, err = s.Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 201 || res.RemoteID != "SUP-1" {
		t.Fatalf("follow-up: %v %+v", err, res)
	}
	wantLink(t, "follow-up", res.Link, link)
	golden(t, "jira/followup.golden", tap.last(t).text(t))
	// Without a body, the subject is the comment.
	d.Fields = map[string]string{"subject": "Ann rated again", "body": " \n"}
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	is := f.Issues()[0]
	if !slices.Equal(is.Comments, []string{"Now: 5/5\nthanks", "Ann rated again"}) || len(f.Issues()) != 1 {
		t.Errorf("comments %q", is.Comments)
	}
	if !slices.Contains(is.Labels, jiraTestMarker("chat-40526")) {
		t.Errorf("labels %v: the marker is not made from the dedup key", is.Labels)
	}
}

func TestJiraOAuth(t *testing.T) {
	f := fakeapi.NewJira(jiraTestEmail, jiraTestToken)
	f.AcceptBearer("oauth-access-token-77")
	// OAuth apps go through Atlassian's gateway; the fake serves the API
	// at its root.
	tap := newRequestTap(t, http.StripPrefix("/ex/jira/abc", f))
	s := mustBuild(t, "jira", "base_url: "+tap.URL+"/ex/jira/abc/\noauth_token: ${T}\nproject: SUP", map[string]string{"T": "oauth-access-token-77"})
	res, err := s.Deliver(context.Background(), jiraDelivery())
	if err != nil {
		t.Fatal(err)
	}
	req := tap.last(t)
	if req.URI != "/ex/jira/abc/rest/api/3/issue" || req.Header.Get("Authorization") != "Bearer oauth-access-token-77" {
		t.Errorf("%s with %q", req.URI, req.Header.Get("Authorization"))
	}
	// The gateway has no issue pages: without a site, no url.
	wantLink(t, "create through the gateway", res.Link, router.Link{"id": "SUP-1", "key": "SUP-1"})
	s = mustBuild(t, "jira", "site: acme\nbase_url: "+tap.URL+"/ex/jira/abc/\noauth_token: ${T}\nproject: SUP", map[string]string{"T": "oauth-access-token-77"})
	d := jiraDelivery()
	d.RemoteID = "SUP-1"
	res, err = s.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	wantLink(t, "follow-up through the gateway, with a site", res.Link, router.Link{"id": "SUP-1", "key": "SUP-1", "url": "https://acme.atlassian.net/browse/SUP-1"})
}

func TestJiraErrors(t *testing.T) {
	f, tap := jiraFake(t)
	s := jiraSinkAt(t, tap.URL, "")
	if _, err := s.Deliver(context.Background(), jiraDelivery()); err != nil {
		t.Fatal(err)
	}
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
		{"rate limited", func() { f.Fail(1, 429, "7") }, nil, "", 429, false, 7 * time.Second, "Rate limit exceeded"},
		{"server error", func() { f.Fail(1, 503, "") }, nil, "", 503, false, 0, "503"},
		{"bad priority", nil, map[string]string{"subject": "x", "priority": "Urgent"}, "", 400, true, 0, "priority: The priority selected is invalid."},
		{"no such issue", nil, nil, "SUP-99", 404, true, 0, "Issue does not exist"},
		{"comment rate limited", func() { f.Fail(1, 429, "2") }, nil, "SUP-1", 429, false, 2 * time.Second, "429"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.script != nil {
				tt.script()
			}
			d := jiraDelivery()
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
	if n := len(f.Issues()); n != 1 {
		t.Errorf("%d issues after failures, want 1", n)
	}
	// A wrong token is permanent, and no form of it is printed.
	wrong := mustBuild(t, "jira", "base_url: "+tap.URL+"\nemail: "+jiraTestEmail+"\napi_token: ${T}\nproject: SUP", map[string]string{"T": "wrong-token-1234"})
	_, err := wrong.Deliver(context.Background(), jiraDelivery())
	b64 := base64.StdEncoding.EncodeToString([]byte(jiraTestEmail + ":wrong-token-1234"))
	if !router.IsPermanent(err) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-token") || strings.Contains(err.Error(), b64) {
		t.Errorf("wrong token: %v", err)
	}
}

func TestJiraRetryAfterTimeoutFindsTheIssue(t *testing.T) {
	f, tap := jiraFake(t)
	s := jiraSinkAt(t, tap.URL, "")
	f.DelayNextCreate(time.Minute) // the issue exists, the answer never comes in time
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	d := jiraDelivery()
	_, err := s.Deliver(ctx, d)
	if err == nil || router.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out create: %v, want a retryable deadline error", err)
	}
	if n := len(f.Issues()); n != 1 {
		t.Fatalf("%d issues after the timed-out create, want 1", n)
	}
	d.Attempt = 2
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.RemoteID != "SUP-1" || res.StatusCode != 200 {
		t.Fatalf("retry: %v %+v", err, res)
	}
	wantLink(t, "issue found", res.Link, router.Link{"id": "SUP-1", "key": "SUP-1", "url": tap.URL + "/browse/SUP-1"})
	if n := len(f.Issues()); n != 1 {
		t.Errorf("%d issues after the retry: it created a second one", n)
	}
	search := tap.last(t)
	u, err := url.Parse(search.URI)
	if err != nil || search.Method != "GET" || u.Path != "/rest/api/3/search/jql" {
		t.Fatalf("last request %s %s, want the search", search.Method, search.URI)
	}
	q := u.Query()
	if got, want := q.Get("jql"), `labels = "`+jiraTestMarker("dlv-0001")+`"`; got != want || q.Get("maxResults") != "1" || q.Get("fields") != "key" {
		t.Errorf("query %v, want jql %q, maxResults 1, fields key", q, want)
	}
}

func TestJiraRetrySearchesThenCreates(t *testing.T) {
	f, tap := jiraFake(t)
	s := jiraSinkAt(t, tap.URL, "")
	d := jiraDelivery()
	d.Attempt = 3
	f.Fail(1, 502, "")
	if _, err := s.Deliver(context.Background(), d); err == nil || router.IsPermanent(err) || !strings.Contains(err.Error(), "search") {
		t.Fatalf("failed search: %v, want a retryable error", err)
	}
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.RemoteID != "SUP-1" || res.StatusCode != 201 {
		t.Fatalf("%v %+v", err, res)
	}
	want := []string{"GET /rest/api/3/search/jql", "GET /rest/api/3/search/jql", "POST /rest/api/3/issue"}
	if got := f.Requests(); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
}

func TestADFFromText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "null"},
		{" \n\t\n", "null"},
		{"hello", `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"hello"}]}]}`},
		{"\n\na\nb  \r\n\r\n \nc\rd\n\n", `{"type":"doc","version":1,"content":[` +
			`{"type":"paragraph","content":[{"type":"text","text":"a"},{"type":"hardBreak"},{"type":"text","text":"b"}]},` +
			`{"type":"paragraph","content":[{"type":"text","text":"c"},{"type":"hardBreak"},{"type":"text","text":"d"}]}]}`},
		// Markup of every kind Jira has known stays text.
		{"*bold* <b>x</b> {code}y{code} [link|http://x] ![img.png!", `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[` +
			`{"type":"text","text":"*bold* \u003cb\u003ex\u003c/b\u003e {code}y{code} [link|http://x] ![img.png!"}]}]}`},
		{"  indented\ttab\x00\x07\u0085\x7f ok\xff", `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"  indented\ttab ok"}]}]}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(adfFromText(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("adfFromText(%q)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

func TestADFFromTextIsBounded(t *testing.T) {
	for name, in := range map[string]string{
		"escapes":    strings.Repeat(`<&>"\`, 20000),
		"lines":      strings.Repeat("a\n", 40000),
		"paragraphs": strings.Repeat("a\n\n", 40000),
		"wide":       strings.Repeat("日本語 ", 20000),
		"one line":   strings.Repeat("x", 100000),
	} {
		doc := adfFromText(in)
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > jiraMaxADF || len(b) < jiraMaxADF*95/100 {
			t.Errorf("%s: %d bytes of ADF, want a little under %d", name, len(b), jiraMaxADF)
		}
		last := doc.Content[len(doc.Content)-1]
		if text := last.Content[len(last.Content)-1].Text; !strings.HasSuffix(text, "…") || !utf8.ValidString(text) {
			t.Errorf("%s: ends %q, want the cut marked", name, text)
		}
		for _, p := range doc.Content {
			for _, n := range p.Content {
				if n.Type == "text" && n.Text == "" {
					t.Fatalf("%s: empty text node", name)
				}
			}
		}
	}
}

func TestJiraSummaryAndLabels(t *testing.T) {
	if got := jiraSummary(" a\r\n b\tc\x00d "); got != "a b c d" {
		t.Errorf("summary %q", got)
	}
	long := jiraSummary(strings.Repeat("ü", 300))
	if utf8.RuneCountInString(long) != jiraMaxSummary || !strings.HasSuffix(long, "…") {
		t.Errorf("summary of %d runes", utf8.RuneCountInString(long))
	}
	got := jiraLabels(" csat  sad,vip\tlist, ,hookroute-x,"+strings.Repeat("l", 300), "hookroute-x")
	if len(got) != 4 || got[0] != "csat-sad" || got[1] != "vip-list" || utf8.RuneCountInString(got[2]) != jiraMaxLabel || got[3] != "hookroute-x" {
		t.Errorf("labels %q", got)
	}
}

func TestJiraRouteFields(t *testing.T) {
	specs, _ := testRegistry().RouteFields("jira")
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		if s.Escape != nil {
			t.Errorf("%s has an escape: ADF text nodes need none", s.Name)
		}
	}
	if !slices.Equal(names, []string{"subject", "body", "labels", "priority"}) || !specs[0].Required {
		t.Errorf("fields %v", names)
	}
}

func TestJiraDeliveryProblemsArePermanent(t *testing.T) {
	_, tap := jiraFake(t)
	s := jiraSinkAt(t, tap.URL, "")
	for _, d := range []*router.Delivery{
		delivery(map[string]string{"subject": " \n "}),
		{ID: "x", Attempt: 1, RemoteID: "SUP-1", Fields: map[string]string{"subject": "\x00", "body": "\n"}},
	} {
		if _, err := s.Deliver(context.Background(), d); !router.IsPermanent(err) {
			t.Errorf("%v: got %v, want a permanent error", d.Fields, err)
		}
	}
}

func TestJiraConfig(t *testing.T) {
	env := map[string]string{"T": jiraTestToken, "BAD": "a b"}
	auth := "\nemail: bot@acme.example\napi_token: ${T}"
	tests := []struct{ snippet, path, msg string }{
		{"site: acme\nproject: SUP", "api_token", "or oauth_token"},
		{"site: acme\nproject: SUP\nemail: bot@acme.example", "api_token", "must be set with email"},
		{"site: acme\nproject: SUP\napi_token: ${T}", "email", "must be set"},
		{"site: acme\nproject: SUP\napi_token: ${T}\nemail: 'bot:x@acme.example'", "email", "email address"},
		{"site: acme\nproject: SUP\nemail: bot@acme.example\napi_token: ${BAD}", "api_token", "one word"},
		{"site: acme\nproject: SUP\noauth_token: ${T}" + auth, "oauth_token", "not both"},
		{"site: acme\nproject: SUP\noauth_token: ${T}", "base_url", "api.atlassian.com"},
		{"site: acme\nproject: SUP\noauth_token: ${BAD}\nbase_url: https://api.atlassian.com/ex/jira/x", "oauth_token", "one word"},
		{"site: acme\nproject: SUP\napi_token: written-in-the-file\nemail: bot@acme.example", "api_token", "by reference"},
		{"project: SUP" + auth, "site", "must be set"},
		{"site: acme.atlassian.net\nproject: SUP" + auth, "site", "name only"},
		{"site: acme.atlassian.net\nbase_url: https://proxy.example/jira\nproject: SUP" + auth, "site", "name only"},
		{"base_url: ftp://x/\nproject: SUP" + auth, "base_url", "http or https"},
		{"base_url: https://u:p@x/\nproject: SUP" + auth, "base_url", "user or password"},
		{"site: acme" + auth, "project", "project key"},
		{"site: acme\nproject: 'sup desk'" + auth, "project", "project key"},
		{"site: acme\nproject: SUP\nissue_type: ' '" + auth, "issue_type", "issue type"},
		{"site: acme\nproject: SUP\nlabels: [x]" + auth, "labels", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "jira", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
		if err != nil && strings.Contains(err.Error(), jiraTestToken) {
			t.Errorf("config error quotes the token: %v", err)
		}
	}
	s := mustBuild(t, "jira", "site: Acme-2\nproject: SUP"+auth, env).(*jiraSink)
	if s.base.String() != "https://acme-2.atlassian.net" || s.conf.IssueType != "Task" {
		t.Errorf("base %s, issue type %q", s.base, s.conf.IssueType)
	}
	s = mustBuild(t, "jira", "site: acme\nbase_url: http://127.0.0.1:9/jira/\nproject: SUP"+auth, env).(*jiraSink)
	if s.base.String() != "http://127.0.0.1:9/jira" {
		t.Errorf("base_url %s does not replace the site's", s.base)
	}
}
