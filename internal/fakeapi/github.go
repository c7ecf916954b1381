package fakeapi

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// GitHub fakes the issue endpoints of the GitHub REST API, from GitHub's
// documentation:
//
//   - POST /repos/{owner}/{repo}/issues with {"title", "body", "labels",
//     "assignees"} answers 201 with the issue ({"number": 1, "html_url":
//     "https://github.com/{owner}/{repo}/issues/1", ...}); a missing or
//     too long title (over 256 characters) or body (over 65,536) answers
//     422 Validation Failed.
//   - POST /repos/{owner}/{repo}/issues/{number}/comments with {"body"}
//     answers 201 with the comment ({"id", "html_url":
//     ".../issues/{number}#issuecomment-{id}", "issue_url", ...}); an
//     unknown issue answers 404.
//   - GET /repos/{owner}/{repo}/issues/{number} answers the issue.
//   - GET /search/issues?q=...&per_page=n understands repo:{owner}/{repo},
//     in:body, is:issue and words or "quoted phrases", each of which must
//     occur in the body (case-insensitive), and answers {"total_count",
//     "incomplete_results", "items"} (the first page).
//   - Auth is "Authorization: Bearer {token}" (or "token {token}"); anything
//     else answers 401 Bad credentials. An X-GitHub-Api-Version other than
//     2022-11-28 answers 400. Every answer carries X-RateLimit-* headers.
//
// A path may start with /api/v3, as on GitHub Enterprise Server; then the
// answers' URLs are the server's, as GHES gives them: html_url is
// {scheme}://{host}/{owner}/{repo}/issues/{n} and the API's URLs are
// under {scheme}://{host}/api/v3, where github.com's are under
// https://github.com and https://api.github.com. The fake answers at once
// what GitHub's search finds only after its index caught up.
type GitHub struct {
	token string
	repos map[string]bool // nil: every repository exists

	mu       sync.Mutex
	issues   map[string][]*GitHubIssue // by "owner/repo", number order
	nextID   int64
	faults   []githubFault
	requests []GitHubRequest
	used     int
}

// GitHubIssue is an issue the fake holds.
type GitHubIssue struct {
	Repo      string // "owner/repo"
	Number    int
	Title     string
	Body      string
	Labels    []string
	Assignees []string
	Comments  []string // comment bodies, oldest first
}

// GitHubRequest is a request the fake received.
type GitHubRequest struct {
	Method string
	Path   string // with the query, as sent
	Header http.Header
	Body   []byte
}

// githubFault is one step of the fault script.
type githubFault struct {
	n          int
	status     int
	retryAfter string
	reset      time.Time // a spent primary rate limit, until reset
	lose       bool      // carry the request out, then answer 502
}

const (
	githubAPIVersion = "2022-11-28"
	githubRateLimit  = 5000
	githubMaxTitle   = 256
	githubMaxBody    = 65536
	githubMaxRequest = 1 << 20
)

// NewGitHub returns a fake that accepts token. With repos ("owner/repo")
// only those repositories exist; without, every one does.
func NewGitHub(token string, repos ...string) *GitHub {
	g := &GitHub{token: token, issues: map[string][]*GitHubIssue{}, nextID: 1800000000}
	if len(repos) > 0 {
		g.repos = map[string]bool{}
		for _, r := range repos {
			g.repos[strings.ToLower(r)] = true
		}
	}
	return g
}

// Fail makes the next n requests answer status, with a Retry-After header
// when retryAfter is not empty, before any other check. A 403 with
// Retry-After reads as GitHub's secondary rate limit.
func (g *GitHub) Fail(n, status int, retryAfter string) {
	g.script(githubFault{n: n, status: status, retryAfter: retryAfter})
}

// FailRateLimit makes the next n requests answer as when the primary rate
// limit is spent: 403, X-RateLimit-Remaining: 0, X-RateLimit-Reset: reset.
func (g *GitHub) FailRateLimit(n int, reset time.Time) {
	g.script(githubFault{n: n, status: http.StatusForbidden, reset: reset})
}

// LoseAnswers makes the next n requests be carried out but answered 502
// Bad Gateway, as when a proxy gives up after GitHub acted.
func (g *GitHub) LoseAnswers(n int) {
	g.script(githubFault{n: n, status: http.StatusBadGateway, lose: true})
}

func (g *GitHub) script(f githubFault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f.n > 0 {
		g.faults = append(g.faults, f)
	}
}

// Issues returns copies of the issues of repo ("owner/repo"), in number
// order.
func (g *GitHub) Issues(repo string) []GitHubIssue {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []GitHubIssue
	for _, is := range g.issues[strings.ToLower(repo)] {
		c := *is
		c.Labels, c.Assignees, c.Comments = slices.Clone(is.Labels), slices.Clone(is.Assignees), slices.Clone(is.Comments)
		out = append(out, c)
	}
	return out
}

// Requests returns copies of the requests received, oldest first.
func (g *GitHub) Requests() []GitHubRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]GitHubRequest, len(g.requests))
	for i, r := range g.requests {
		out[i] = GitHubRequest{Method: r.Method, Path: r.Path, Header: r.Header.Clone(), Body: slices.Clone(r.Body)}
	}
	return out
}

// ServeHTTP implements http.Handler.
func (g *GitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, githubMaxRequest))
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests = append(g.requests, GitHubRequest{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body})
	g.used++
	w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")
	if g.fault(w, r, body) {
		return
	}
	g.rateHeaders(w, githubRateLimit-g.used, time.Now().Add(time.Hour))
	g.serve(w, r, body)
}

// fault plays the next step of the script, if any, and reports whether it
// answered.
func (g *GitHub) fault(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if len(g.faults) == 0 {
		return false
	}
	f := g.faults[0]
	if g.faults[0].n--; g.faults[0].n == 0 {
		g.faults = g.faults[1:]
	}
	switch {
	case f.lose:
		g.serve(githubDiscard{h: http.Header{}}, r, body)
		githubError(w, f.status, "Server Error")
	case !f.reset.IsZero():
		g.rateHeaders(w, 0, f.reset)
		githubError(w, f.status, "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.")
	default:
		msg := http.StatusText(f.status)
		switch {
		case f.status == http.StatusForbidden && f.retryAfter != "":
			msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
		case f.status == http.StatusForbidden:
			msg = "Resource not accessible by personal access token"
		}
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		githubError(w, f.status, msg)
	}
	return true
}

func (g *GitHub) rateHeaders(w http.ResponseWriter, remaining int, reset time.Time) {
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(githubRateLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(remaining, 0)))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Used", strconv.Itoa(githubRateLimit-max(remaining, 0)))
	h.Set("X-RateLimit-Resource", "core")
}

// serve answers an authorized request; the lock is held.
func (g *GitHub) serve(w http.ResponseWriter, r *http.Request, body []byte) {
	if !g.authorized(w, r) {
		return
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v3"), "/"), "/")
	if len(parts) == 2 && parts[0] == "search" && parts[1] == "issues" && r.Method == http.MethodGet {
		g.search(w, r)
		return
	}
	if len(parts) < 4 || parts[0] != "repos" || parts[3] != "issues" || !g.exists(parts[1]+"/"+parts[2]) {
		githubError(w, http.StatusNotFound, "Not Found")
		return
	}
	g.serveIssues(w, r, parts[1]+"/"+parts[2], parts[4:], body)
}

// authorized checks the token and the API version, answering when either
// is wrong.
func (g *GitHub) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	if g.token == "" || (auth != "Bearer "+g.token && auth != "token "+g.token) {
		githubError(w, http.StatusUnauthorized, "Bad credentials")
		return false
	}
	if v := r.Header.Get("X-GitHub-Api-Version"); v != "" && v != githubAPIVersion {
		githubError(w, http.StatusBadRequest, fmt.Sprintf("API version %s is not supported.", v))
		return false
	}
	return true
}

// serveIssues answers under /repos/{repo}/issues, rest being the path's
// parts after it.
func (g *GitHub) serveIssues(w http.ResponseWriter, r *http.Request, repo string, rest []string, body []byte) {
	switch {
	case len(rest) == 0 && r.Method == http.MethodPost:
		g.create(w, r, repo, body)
	case len(rest) == 1 && r.Method == http.MethodGet:
		if is := g.issue(repo, rest[0]); is != nil {
			githubJSON(w, http.StatusOK, g.view(is, githubRoots(r)))
			return
		}
		githubError(w, http.StatusNotFound, "Not Found")
	case len(rest) == 2 && rest[1] == "comments" && r.Method == http.MethodPost:
		g.comment(w, r, repo, rest[0], body)
	default:
		githubError(w, http.StatusNotFound, "Not Found")
	}
}

func (g *GitHub) exists(repo string) bool {
	return g.repos == nil || g.repos[strings.ToLower(repo)]
}

func (g *GitHub) issue(repo, number string) *GitHubIssue {
	n, err := strconv.Atoi(number)
	list := g.issues[strings.ToLower(repo)]
	if err != nil || n < 1 || n > len(list) {
		return nil
	}
	return list[n-1]
}

func (g *GitHub) create(w http.ResponseWriter, r *http.Request, repo string, body []byte) {
	var in struct {
		Title     *string  `json:"title"`
		Body      string   `json:"body"`
		Labels    []string `json:"labels"`
		Assignees []string `json:"assignees"`
	}
	if json.Unmarshal(body, &in) != nil {
		githubError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	switch {
	case in.Title == nil || strings.TrimSpace(*in.Title) == "":
		githubInvalid(w, "Issue", "title", "missing_field", "")
		return
	case utf8.RuneCountInString(*in.Title) > githubMaxTitle:
		githubInvalid(w, "Issue", "title", "custom", fmt.Sprintf("title is too long (maximum is %d characters)", githubMaxTitle))
		return
	case utf8.RuneCountInString(in.Body) > githubMaxBody:
		githubInvalid(w, "Issue", "body", "custom", fmt.Sprintf("body is too long (maximum is %d characters)", githubMaxBody))
		return
	}
	key := strings.ToLower(repo)
	is := &GitHubIssue{Repo: repo, Number: len(g.issues[key]) + 1, Title: *in.Title, Body: in.Body, Labels: in.Labels, Assignees: in.Assignees}
	g.issues[key] = append(g.issues[key], is)
	w.Header().Set("Location", githubAPIRoot(r)+"/repos/"+repo+"/issues/"+strconv.Itoa(is.Number))
	githubJSON(w, http.StatusCreated, g.view(is, githubRoots(r)))
}

func (g *GitHub) comment(w http.ResponseWriter, r *http.Request, repo, number string, body []byte) {
	is := g.issue(repo, number)
	if is == nil {
		githubError(w, http.StatusNotFound, "Not Found")
		return
	}
	var in struct {
		Body string `json:"body"`
	}
	switch {
	case json.Unmarshal(body, &in) != nil:
		githubError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	case strings.TrimSpace(in.Body) == "":
		githubInvalid(w, "IssueComment", "body", "missing_field", "")
		return
	case utf8.RuneCountInString(in.Body) > githubMaxBody:
		githubInvalid(w, "IssueComment", "body", "custom", fmt.Sprintf("body is too long (maximum is %d characters)", githubMaxBody))
		return
	}
	is.Comments = append(is.Comments, in.Body)
	g.nextID++
	roots := githubRoots(r)
	issue := fmt.Sprintf("%s/repos/%s/issues/%d", roots.api, is.Repo, is.Number)
	githubJSON(w, http.StatusCreated, map[string]any{
		"id": g.nextID, "node_id": fmt.Sprintf("IC_kwDOFake%d", g.nextID),
		"url":       fmt.Sprintf("%s/repos/%s/issues/comments/%d", roots.api, is.Repo, g.nextID),
		"html_url":  fmt.Sprintf("%s/%s/issues/%d#issuecomment-%d", roots.web, is.Repo, is.Number, g.nextID),
		"issue_url": issue, "body": in.Body, "user": map[string]any{"login": "hookroute-bot"},
		"created_at": time.Now().UTC().Format(time.RFC3339), "author_association": "MEMBER",
	})
}

func (g *GitHub) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	if strings.TrimSpace(q) == "" {
		githubInvalid(w, "Search", "q", "missing", "")
		return
	}
	repo, terms := githubSearchQuery(q)
	if repo != "" && !g.exists(repo) {
		githubInvalid(w, "Search", "q", "invalid", "The listed users and repositories cannot be searched either because the resources do not exist or you do not have permission to view them.")
		return
	}
	perPage, err := strconv.Atoi(r.URL.Query().Get("per_page"))
	if err != nil || perPage < 1 {
		perPage = 30
	}
	items := g.searchIssues(repo, terms, githubRoots(r))
	total := len(items)
	githubJSON(w, http.StatusOK, map[string]any{"total_count": total, "incomplete_results": false, "items": items[:min(total, perPage, 100)]})
}

// githubSearchQuery reads a search query: the repo: qualifier (lower case;
// "" for every repository) and the terms, words and phrases, that the
// issue's body must all contain.
func githubSearchQuery(q string) (repo string, terms []string) {
	for _, tok := range githubTokens(q) {
		switch k, v, _ := strings.Cut(tok, ":"); {
		case k == "repo" && !strings.HasPrefix(tok, `"`):
			repo = strings.ToLower(v)
		case (k == "in" || k == "is" || k == "type") && !strings.HasPrefix(tok, `"`):
			// in:body is the only place searched; no pull requests here.
		default:
			terms = append(terms, strings.ToLower(strings.Trim(tok, `"`)))
		}
	}
	return repo, terms
}

// searchIssues returns the issues, as search shows them, of repo (every
// repository if "") whose body holds every term, case folded.
func (g *GitHub) searchIssues(repo string, terms []string, roots githubRootURLs) []any {
	items := []any{}
	for _, key := range slices.Sorted(maps.Keys(g.issues)) {
		if repo != "" && key != repo {
			continue
		}
		for _, is := range g.issues[key] {
			body := strings.ToLower(is.Body)
			if !slices.ContainsFunc(terms, func(t string) bool { return !strings.Contains(body, t) }) {
				v := g.view(is, roots)
				v["score"] = 1.0
				items = append(items, v)
			}
		}
	}
	return items
}

// githubTokens splits a search query into words and "quoted phrases"
// (kept with their quotes).
func githubTokens(q string) []string {
	var out []string
	for i, part := range strings.Split(q, `"`) {
		if i%2 == 1 {
			out = append(out, `"`+part+`"`)
			continue
		}
		out = append(out, strings.Fields(part)...)
	}
	return out
}

// view is the issue as the API at roots shows it.
func (g *GitHub) view(is *GitHubIssue, roots githubRootURLs) map[string]any {
	labels := []any{}
	for i, l := range is.Labels {
		labels = append(labels, map[string]any{"id": 5000000000 + i, "name": l, "color": "ededed", "default": false})
	}
	assignees := []any{}
	for _, a := range is.Assignees {
		assignees = append(assignees, map[string]any{"login": a, "type": "User"})
	}
	api := roots.api + "/repos/" + is.Repo
	return map[string]any{
		"id": 2000000000 + is.Number, "node_id": fmt.Sprintf("I_kwDOFake%06d", is.Number), "number": is.Number,
		"url": fmt.Sprintf("%s/issues/%d", api, is.Number), "repository_url": api,
		"html_url": fmt.Sprintf("%s/%s/issues/%d", roots.web, is.Repo, is.Number),
		"title":    is.Title, "body": is.Body, "state": "open", "locked": false, "labels": labels, "assignees": assignees,
		"comments": len(is.Comments), "user": map[string]any{"login": "hookroute-bot", "type": "User"},
		"created_at": time.Now().UTC().Format(time.RFC3339), "author_association": "MEMBER",
	}
}

// githubRootURLs are the roots of the URLs in an answer: the API's and
// the web pages'.
type githubRootURLs struct{ api, web string }

// githubRoots returns github.com's roots, or those of the fake itself for
// a request under /api/v3, as a GitHub Enterprise Server answers.
func githubRoots(r *http.Request) githubRootURLs {
	if strings.HasPrefix(r.URL.Path, "/api/v3/") {
		host := githubAPIRoot(r)
		return githubRootURLs{api: host + "/api/v3", web: host}
	}
	return githubRootURLs{api: "https://api.github.com", web: "https://github.com"}
}

func githubAPIRoot(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// githubInvalid answers 422 Validation Failed with one field error.
func githubInvalid(w http.ResponseWriter, resource, field, code, message string) {
	e := map[string]any{"resource": resource, "field": field, "code": code}
	if message != "" {
		e["message"] = message
	}
	githubJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []any{e},
		"documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue", "status": "422"})
}

func githubError(w http.ResponseWriter, status int, message string) {
	githubJSON(w, status, map[string]any{"message": message, "documentation_url": "https://docs.github.com/rest", "status": strconv.Itoa(status)})
}

func githubJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// githubDiscard is a ResponseWriter that throws the answer away, for
// LoseAnswers.
type githubDiscard struct{ h http.Header }

func (d githubDiscard) Header() http.Header         { return d.h }
func (d githubDiscard) Write(b []byte) (int, error) { return len(b), nil }
func (d githubDiscard) WriteHeader(int)             {}
