package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

const githubTestToken = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"

// newGitHubFake serves a fake GitHub holding the repository acme/support.
func newGitHubFake(t *testing.T) (*fakeapi.GitHub, *httptest.Server) {
	t.Helper()
	f := fakeapi.NewGitHub(githubTestToken, "acme/support")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func githubSinkAt(t *testing.T, base string) router.Sink {
	t.Helper()
	return mustBuild(t, "github", "repository: acme/support\ntoken: ${GITHUB_TOKEN}\nbase_url: "+base, map[string]string{"GITHUB_TOKEN": githubTestToken})
}

// githubFields renders fields the way the router does for the route
// body "Ann rated the chat sad:\n\n> {{ .chat.feedback }}".
func githubFields(feedback string) map[string]string {
	return map[string]string{
		"subject":   "Sad chat from Ann",
		"body":      "Ann rated the chat sad:\n\n> " + escapeMarkdown(feedback),
		"labels":    "salesiq, csat-sad,",
		"assignees": "octocat",
	}
}

// goldenRequestJSON shows a request body in a golden file: indented, and
// with the <, > and & that encoding/json sends as \u003c, \u003e and
// \u0026 shown as themselves. Key order and the rest are as sent.
func goldenRequestJSON(t *testing.T, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		t.Fatalf("request body is not JSON: %v: %s", err, raw)
	}
	b.WriteByte('\n')
	return []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(b.String()))
}

func lastGitHubRequest(t *testing.T, f *fakeapi.GitHub) fakeapi.GitHubRequest {
	t.Helper()
	reqs := f.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request received")
	}
	return reqs[len(reqs)-1]
}

func TestGitHubCreatesIssue(t *testing.T) {
	f, srv := newGitHubFake(t)
	d := delivery(githubFields("too slow <b>&</b> @octocat #12"))
	d.DedupKey = "salesiq-chat-40526000001808033"
	res, err := githubSinkAt(t, srv.URL).Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 201 || res.RemoteID != "1" {
		t.Fatalf("Deliver = %+v, %v; want 201, issue 1", res, err)
	}
	wantLink(t, "create", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/support/issues/1"})
	r := lastGitHubRequest(t, f)
	want := map[string]string{
		"Authorization": "Bearer " + githubTestToken, "Accept": "application/vnd.github+json",
		"X-Github-Api-Version": "2022-11-28", "Content-Type": "application/json", "User-Agent": "hookroute",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if r.Method != "POST" || r.Path != "/repos/acme/support/issues" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	golden(t, "github/create.golden", goldenRequestJSON(t, r.Body))
	issues := f.Issues("acme/support")
	if len(issues) != 1 || strings.Join(issues[0].Labels, "|") != "salesiq|csat-sad" || strings.Join(issues[0].Assignees, "|") != "octocat" {
		t.Fatalf("issues %+v", issues)
	}
	if !strings.Contains(issues[0].Body, "\n\n<!-- hookroute:") || !strings.HasSuffix(issues[0].Body, " -->") {
		t.Errorf("body has no marker: %q", issues[0].Body)
	}
}

func TestGitHubFollowUpComments(t *testing.T) {
	f, srv := newGitHubFake(t)
	s := githubSinkAt(t, srv.URL)
	if _, err := s.Deliver(context.Background(), delivery(githubFields("meh"))); err != nil {
		t.Fatal(err)
	}
	d := delivery(githubFields("still waiting, see GH-7"))
	d.ID, d.DedupKey, d.RemoteID = "dlv-0002", "salesiq-chat-1", "1"
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.StatusCode != 201 || res.RemoteID != "1" {
		t.Fatalf("Deliver = %+v, %v; want 201, issue 1", res, err)
	}
	wantLink(t, "follow-up", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/support/issues/1"})
	r := lastGitHubRequest(t, f)
	if r.Path != "/repos/acme/support/issues/1/comments" || r.Header.Get("Authorization") != "Bearer "+githubTestToken {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	golden(t, "github/followup.golden", goldenRequestJSON(t, r.Body))

	// Without a body, the subject (escaped: it is plain text) is the comment.
	d.Fields = map[string]string{"subject": "Ann wrote *again*"}
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	issues := f.Issues("acme/support")
	if len(issues) != 1 || len(issues[0].Comments) != 2 || issues[0].Comments[1] != `Ann wrote \*again\*` {
		t.Fatalf("issues %+v", issues)
	}

	// A remote id that is no issue number never reaches a URL.
	before := len(f.Requests())
	d.RemoteID = "1/../../2"
	if _, err := s.Deliver(context.Background(), d); !router.IsPermanent(err) || len(f.Requests()) != before {
		t.Errorf("remote id %q: %v", d.RemoteID, err)
	}
}

func TestGitHubRetryFindsIssueOfLostAnswer(t *testing.T) {
	f, srv := newGitHubFake(t)
	s := githubSinkAt(t, srv.URL)
	f.LoseAnswers(1)
	d := delivery(githubFields("lost"))
	if _, err := s.Deliver(context.Background(), d); err == nil || router.IsPermanent(err) {
		t.Fatalf("lost answer: %v, want a retryable error", err)
	}
	d.Attempt = 2
	res, err := s.Deliver(context.Background(), d)
	if err != nil || res.RemoteID != "1" || res.StatusCode != 200 {
		t.Fatalf("retry = %+v, %v; want the issue found by search", res, err)
	}
	wantLink(t, "issue found", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/support/issues/1"})
	if n := len(f.Issues("acme/support")); n != 1 {
		t.Fatalf("%d issues, want 1", n)
	}
	r := lastGitHubRequest(t, f)
	u, _ := url.Parse(r.Path)
	if r.Method != "GET" || u.Path != "/search/issues" || !strings.HasPrefix(u.Query().Get("q"), `repo:acme/support in:body "hookroute:`) {
		t.Errorf("search %s %s", r.Method, r.Path)
	}

	// A failed search is retried rather than risking a second issue.
	f.Fail(1, http.StatusServiceUnavailable, "")
	d.Attempt = 3
	if _, err := s.Deliver(context.Background(), d); err == nil || router.IsPermanent(err) || !strings.Contains(err.Error(), "search") {
		t.Errorf("failed search: %v", err)
	}

	// A retry that finds nothing creates.
	other := delivery(githubFields("new"))
	other.ID, other.Attempt = "dlv-0002", 2
	if res, err := s.Deliver(context.Background(), other); err != nil || res.RemoteID != "2" {
		t.Fatalf("retry with nothing to find = %+v, %v", res, err)
	}
}

func TestGitHubEnterpriseBaseURL(t *testing.T) {
	f, srv := newGitHubFake(t)
	s := githubSinkAt(t, srv.URL+"/api/v3/")
	res, err := s.Deliver(context.Background(), delivery(githubFields("x")))
	if err != nil {
		t.Fatal(err)
	}
	if r := lastGitHubRequest(t, f); r.Path != "/api/v3/repos/acme/support/issues" {
		t.Errorf("path %s", r.Path)
	}
	// The server's own pages, as its answers give them.
	link := router.Link{"id": "1", "number": "1", "url": srv.URL + "/acme/support/issues/1"}
	wantLink(t, "create", res.Link, link)
	d := delivery(githubFields("y"))
	d.RemoteID = "1"
	if res, err = s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	wantLink(t, "follow-up", res.Link, link)
}

// githubRewriting serves f, passing each JSON object it answers (each
// item of a search's) through edit, as a GitHub whose answers differ from
// the fake's would.
func githubRewriting(t *testing.T, f *fakeapi.GitHub, edit func(r *http.Request, obj map[string]any)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := httptest.NewRecorder()
		f.ServeHTTP(got, r)
		var obj map[string]any
		if json.Unmarshal(got.Body.Bytes(), &obj) == nil {
			if items, ok := obj["items"].([]any); ok {
				for _, it := range items {
					if m, ok := it.(map[string]any); ok {
						edit(r, m)
					}
				}
			} else {
				edit(r, obj)
			}
		}
		for k, v := range got.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(got.Code)
		_ = json.NewEncoder(w).Encode(obj)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGitHubLinkURL(t *testing.T) {
	f := fakeapi.NewGitHub(githubTestToken, "acme/support")
	var htmlURL any // what html_url becomes; nil: removed
	srv := githubRewriting(t, f, func(_ *http.Request, obj map[string]any) {
		if htmlURL == nil {
			delete(obj, "html_url")
		} else {
			obj["html_url"] = htmlURL
		}
	})
	s := githubSinkAt(t, srv.URL)
	ctx := context.Background()

	// The page GitHub answers wins: a renamed repository's, here.
	htmlURL = "https://github.com/acme/helpdesk/issues/1"
	res, err := s.Deliver(ctx, delivery(githubFields("x")))
	if err != nil {
		t.Fatal(err)
	}
	wantLink(t, "create, renamed repository", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/helpdesk/issues/1"})

	// Without html_url, or with one that is no web page, the page is
	// made from the repository: github.com's for a base_url that is not
	// GitHub Enterprise Server's.
	for _, bad := range []any{nil, "javascript:alert(1)", 7} {
		htmlURL = bad
		d := delivery(githubFields("y"))
		d.ID = "dlv-0002"
		res, err := s.Deliver(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		wantLink(t, fmt.Sprintf("create, html_url %v", bad), res.Link, router.Link{"id": res.RemoteID, "number": res.RemoteID, "url": "https://github.com/acme/support/issues/" + res.RemoteID})
	}

	// A comment's answer without its html_url: the page recorded with
	// the issue, else the one made from the repository.
	htmlURL = nil
	d := delivery(githubFields("z"))
	d.RemoteID, d.RemoteLink = "1", router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/helpdesk/issues/1"}
	if res, err = s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	wantLink(t, "follow-up, recorded page", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/helpdesk/issues/1"})
	d.RemoteLink = nil
	if res, err = s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	wantLink(t, "follow-up, nothing recorded", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/support/issues/1"})
	// A comment's page of another issue says nothing of this one's.
	htmlURL = "https://github.com/acme/support/issues/2#issuecomment-5"
	if res, err = s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	wantLink(t, "follow-up, comment of another issue", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/support/issues/1"})
	htmlURL = "https://github.com/acme/helpdesk/issues/1#issuecomment-6"
	if res, err = s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	wantLink(t, "follow-up, comment's page", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/helpdesk/issues/1"})
}

func TestGitHubLimits(t *testing.T) {
	f, srv := newGitHubFake(t)
	fields := map[string]string{
		"subject":   "line one\nline  two " + strings.Repeat("é", 300),
		"body":      strings.Repeat("ü", 70000),
		"assignees": "a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12",
	}
	if _, err := githubSinkAt(t, srv.URL).Deliver(context.Background(), delivery(fields)); err != nil {
		t.Fatal(err) // the fake refuses what is over GitHub's limits
	}
	is := f.Issues("acme/support")[0]
	if utf8.RuneCountInString(is.Title) != githubMaxTitle || !strings.HasPrefix(is.Title, "line one line two é") {
		t.Errorf("title %d runes: %.30q", utf8.RuneCountInString(is.Title), is.Title)
	}
	if n := utf8.RuneCountInString(is.Body); n != githubMaxBody || !strings.Contains(is.Body, "…\n\n<!-- hookroute:") {
		t.Errorf("body %d runes", n)
	}
	if len(is.Assignees) != githubMaxAssignees {
		t.Errorf("%d assignees", len(is.Assignees))
	}
	before := len(f.Requests())
	if _, err := githubSinkAt(t, srv.URL).Deliver(context.Background(), delivery(map[string]string{"subject": " \n "})); !router.IsPermanent(err) || len(f.Requests()) != before {
		t.Errorf("empty subject: %v", err)
	}
}

func TestGitHubErrors(t *testing.T) {
	tests := []struct {
		name      string
		script    func(f *fakeapi.GitHub)
		code      int
		permanent bool
		after     time.Duration // 0: no RetryAfterError
		text      string
	}{
		{"429", func(f *fakeapi.GitHub) { f.Fail(1, 429, "7") }, 429, false, 7 * time.Second, "Too Many Requests"},
		{"secondary 403", func(f *fakeapi.GitHub) { f.Fail(1, 403, "60") }, 403, false, time.Minute, "secondary rate limit"},
		{"primary 403", func(f *fakeapi.GitHub) { f.FailRateLimit(1, time.Now().Add(90*time.Second)) }, 403, false, 90 * time.Second, "API rate limit exceeded"},
		{"forbidden", func(f *fakeapi.GitHub) { f.Fail(1, 403, "") }, 403, true, 0, "Resource not accessible"},
		{"502", func(f *fakeapi.GitHub) { f.Fail(1, 502, "") }, 502, false, 0, "502"},
		{"404", func(f *fakeapi.GitHub) { f.Fail(1, 404, "") }, 404, true, 0, "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newGitHubFake(t)
			tt.script(f)
			res, err := githubSinkAt(t, srv.URL).Deliver(context.Background(), delivery(githubFields("x")))
			if err == nil || router.IsPermanent(err) != tt.permanent || res.StatusCode != tt.code {
				t.Fatalf("Deliver = %d, %v; want %d, permanent=%v", res.StatusCode, err, tt.code, tt.permanent)
			}
			if got := router.RetryAfterOf(err); got > tt.after || got < tt.after-2*time.Second {
				t.Errorf("retry after %v, want %v", got, tt.after)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q, want %q in it", err, tt.text)
			}
		})
	}

	f, srv := newGitHubFake(t)
	// A wrong token and an unknown repository are permanent, and no error
	// shows the token.
	wrong := "ghp_wrongwrongwrongwrongwrongwrongwrong"
	s := mustBuild(t, "github", "repository: acme/support\ntoken: ${T}\nbase_url: "+srv.URL, map[string]string{"T": wrong})
	if _, err := s.Deliver(context.Background(), delivery(githubFields("x"))); !router.IsPermanent(err) || !strings.Contains(err.Error(), "Bad credentials") || strings.Contains(err.Error(), "wrongwrong") {
		t.Errorf("wrong token: %v", err)
	}
	s = mustBuild(t, "github", "repository: acme/nope\ntoken: ${T}\nbase_url: "+srv.URL, map[string]string{"T": githubTestToken})
	if res, err := s.Deliver(context.Background(), delivery(githubFields("x"))); !router.IsPermanent(err) || res.StatusCode != 404 {
		t.Errorf("unknown repository: %d %v", res.StatusCode, err)
	}
	if n := len(f.Issues("acme/support")); n != 0 {
		t.Errorf("%d issues", n)
	}
}

func TestGitHubClassify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		code      int
		header    http.Header
		body      string
		permanent bool
		after     time.Duration
		text      string
	}{
		{201, h(), `{"number":1}`, false, 0, ""},
		{403, h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1700000030"), `{"message":"API rate limit exceeded"}`, false, 30 * time.Second, "API rate limit exceeded"},
		{429, h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1699999000"), `{}`, false, time.Second, "429"},
		{403, h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1800000000"), `{}`, false, time.Hour, "403"},
		{403, h(), `{"message":"You have exceeded a secondary rate limit."}`, false, time.Minute, "secondary"},
		{403, h("X-RateLimit-Remaining", "12"), `{"message":"Must have admin rights to Repository."}`, true, 0, "admin rights"},
		{422, h(), `{"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"},"oops"]}`, true, 0, "Validation Failed (title missing_field; oops)"},
		{422, h(), `{"message":"Validation Failed","errors":[{"code":"custom","field":"body","message":"body is too long"}]}`, true, 0, "(body is too long)"},
		{503, h(), `<html>unicorn</html>`, false, 0, "unicorn"},
	}
	for _, tt := range tests {
		err := githubClassify(tt.code, tt.header, []byte(tt.body), now)
		if tt.code == 201 {
			if err != nil {
				t.Errorf("201: %v", err)
			}
			continue
		}
		if err == nil || router.IsPermanent(err) != tt.permanent || router.RetryAfterOf(err) != tt.after || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("githubClassify(%d, %v, %s) = %v (after %v); want permanent=%v, after %v, %q", tt.code, tt.header, tt.body, err, router.RetryAfterOf(err), tt.permanent, tt.after, tt.text)
		}
	}
}

func TestEscapeMarkdown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain words, 42 of them", "plain words, 42 of them"},
		{"*bold* _it_ `code` ~~gone~~", `\*bold\* \_it\_ \` + "`" + `code\` + "`" + ` \~\~gone\~\~`},
		{"[click](https://evil.example) ![x](y)", `\[click\]\(https://evil\.example\) \!\[x\]\(y\)`},
		{"<img src=x onerror=alert(1)> &#64;", `\<img src\=x onerror\=alert\(1\)\> \&\#<!-- -->64;`},
		{"# Title\n- item\n+ item\n1. item\n> quote\n---\n===", "\\#<!-- --> Title\n\\- item\n\\+ item\n1\\. item\n\\> quote\n\\-\\-\\-\n\\=\\=\\="},
		{"| a | b |", `\| a \| b \|`},
		{"$x^2$ {y} back\\slash", `\$x^2\$ \{y\} back\\slash`},
		{"hi @octocat and @acme/team", "hi @<!-- -->octocat and @<!-- -->acme/team"},
		{"see #12, acme/x#3, gh-4 and GH-5", `see \#<!-- -->12, acme/x\#<!-- -->3, gh\-<!-- -->4 and GH\-<!-- -->5`},
		{"tricia@zylker.com", `tricia@<!-- -->zylker\.com`},
		{"ünïcödé ✓", "ünïcödé ✓"},
	}
	for _, tt := range tests {
		if got := escapeMarkdown(tt.in); got != tt.want {
			t.Errorf("escapeMarkdown(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	// Whatever the input, no special character is left bare and every @
	// and # is broken.
	all := "\\`*_{}[]<>()#+-.!|~&=$@"
	got := escapeMarkdown(all + all)
	rest := strings.NewReplacer("<!-- -->", "").Replace(got)
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(markdownSpecial, rest[i]) >= 0 {
			if rest[i] != '\\' || i+1 == len(rest) {
				t.Fatalf("bare %q at %d in %q", rest[i], i, got)
			}
			i++ // the escaped character
		}
	}
	if strings.Count(got, "@<!-- -->") != 2 || strings.Count(got, `\#<!-- -->`) != 2 {
		t.Errorf("mentions or references not broken: %q", got)
	}
}

func TestGitHubRouteFields(t *testing.T) {
	specs, ok := testRegistry().RouteFields("github")
	if !ok {
		t.Fatal("github not registered")
	}
	names := map[string]router.FieldSpec{}
	for _, s := range specs {
		names[s.Name] = s
	}
	if !names["subject"].Required || names["subject"].Escape != nil || names["body"].Escape == nil || names["labels"].Escape != nil {
		t.Errorf("fields %+v", specs)
	}
	if _, ok := names["assignees"]; !ok {
		t.Error("no assignees field")
	}
	if got := names["body"].Escape("@x"); got != "@<!-- -->x" {
		t.Errorf("body escape: %q", got)
	}
}

func TestGitHubConfig(t *testing.T) {
	env := map[string]string{"T": githubTestToken, "BAD": "ghp_a b"}
	tests := []struct{ snippet, path, msg string }{
		{"token: ${T}", "repository", `want "owner/name"`},
		{"repository: acme\ntoken: ${T}", "repository", `want "owner/name"`},
		{"repository: https://github.com/acme/support\ntoken: ${T}", "repository", "owner"},
		{"repository: acme/sup/port\ntoken: ${T}", "repository", "name"},
		{"repository: acme/..\ntoken: ${T}", "repository", "name"},
		{"repository: acme/support", "token", "must be set"},
		{"repository: acme/support\ntoken: ${BAD}", "token", "spaces"},
		{"repository: acme/support\ntoken: ghp_written_in_the_file", "token", "by reference"},
		{"repository: acme/support\ntoken: ${T}\nbase_url: ftp://x/", "base_url", "http or https"},
		{"repository: acme/support\ntoken: ${T}\nbase_url: https://u:p@x/", "base_url", "user or password"},
		{"repository: acme/support\ntoken: ${T}\nowner: acme", "owner", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "github", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
	}
	s := mustBuild(t, "github", "repository: my-org_1/repo.name-2\ntoken: ${T}", env).(*githubSink)
	if s.base.String() != "https://api.github.com" {
		t.Errorf("default base %s", s.base)
	}
}

// TestGitHubDedupKeySearchesFirst: a delivery with a dedup key and no
// recorded issue looks for the key's mark before creating, since an
// earlier delivery with the key may have created the issue and lost the
// answer.
func TestGitHubDedupKeySearchesFirst(t *testing.T) {
	f, srv := newGitHubFake(t)
	s := githubSinkAt(t, srv.URL)
	first := delivery(githubFields("first"))
	first.DedupKey = "salesiq-chat-9"
	if _, err := s.Deliver(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	second := delivery(githubFields("second"))
	second.ID, second.DedupKey = "dlv-0002", "salesiq-chat-9"
	res, err := s.Deliver(context.Background(), second)
	if err != nil || res.RemoteID != "1" {
		t.Fatalf("second delivery = %+v, %v; want issue 1 found", res, err)
	}
	wantLink(t, "follow-up of the issue found", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/support/issues/1"})
	issues := f.Issues("acme/support")
	if len(issues) != 1 || len(issues[0].Comments) != 1 {
		t.Fatalf("issues %+v; want one, with the second delivery as a comment", issues)
	}
}

// TestGitHubFoundIssueLinkCarriesOver checks that a first attempt which
// finds another delivery's issue, and comments on it, links the page the
// search answered when the comment's answer names none.
func TestGitHubFoundIssueLinkCarriesOver(t *testing.T) {
	f := fakeapi.NewGitHub(githubTestToken, "acme/support")
	srv := githubRewriting(t, f, func(r *http.Request, obj map[string]any) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/comments"):
			delete(obj, "html_url")
		case r.URL.Path == "/search/issues":
			obj["html_url"] = "https://github.com/acme/helpdesk/issues/1"
		}
	})
	s := githubSinkAt(t, srv.URL)
	first := delivery(githubFields("first"))
	first.DedupKey = "salesiq-chat-9"
	if _, err := s.Deliver(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	second := delivery(githubFields("second"))
	second.ID, second.DedupKey = "dlv-0002", "salesiq-chat-9"
	res, err := s.Deliver(context.Background(), second)
	if err != nil || res.RemoteID != "1" || len(f.Issues("acme/support")[0].Comments) != 1 {
		t.Fatalf("second delivery = %+v, %v; want a comment on issue 1", res, err)
	}
	wantLink(t, "follow-up of the issue found", res.Link, router.Link{"id": "1", "number": "1", "url": "https://github.com/acme/helpdesk/issues/1"})
}
