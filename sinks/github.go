package sinks

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("github",
		ticketFields(escapeMarkdown,
			// Comma-separated label names, set on create. GitHub creates
			// labels it does not know, and silently drops them all when
			// the token has no push access.
			router.FieldSpec{Name: "labels"},
			// Comma-separated logins, set on create (at most 10).
			router.FieldSpec{Name: "assignees"},
		),
		func() githubConfig { return githubConfig{} },
		newGitHubSink)
}

// githubConfig configures the GitHub sink, which opens an issue (title
// from subject, markdown body from body) and, when the route's dedup key
// already has one, comments on it instead.
//
// GitHub has no idempotency key, so each issue body ends with a hidden
// marker, <!-- hookroute:{hash of the dedup key or delivery id} -->, and a
// retried create first searches the repository for it: a create whose
// answer was lost is not made twice. Assumptions [UNVERIFIED]: the search
// index covers HTML comments in bodies, and it lags by seconds, so a retry
// within that lag may still duplicate; the limits used are GitHub's 256
// characters for a title, 65,536 for a body and 10 assignees; a secondary
// rate limit answered without Retry-After means "wait a minute", as
// GitHub's rate-limit guide says.
//
// A delivery's Link is the issue's number as "id" and "number", and as
// "url" its page: the html_url GitHub answered (for a comment, the
// comment's html_url without its #issuecomment- anchor), else the one
// recorded with the issue, else https://github.com/{repository}/issues/{n}
// (https://HOST/… for a base_url of https://HOST/api/v3).
type githubConfig struct {
	// Repository receives the issues, as "owner/name".
	Repository string `yaml:"repository"`
	// Token may write issues in the repository: a fine-grained token with
	// Issues read and write, a classic token with repo, or a GitHub App
	// installation token, as ${VAR}.
	Token router.Secret `yaml:"token"`
	// BaseURL is the REST API root; default https://api.github.com.
	// GitHub Enterprise Server uses https://HOST/api/v3.
	BaseURL string `yaml:"base_url"`
}

const (
	githubAPIURL        = "https://api.github.com"
	githubAPIVersion    = "2022-11-28"
	githubMaxTitle      = 256   // runes
	githubMaxBody       = 65536 // runes, the marker included
	githubMaxAssignees  = 10
	githubSecondaryWait = time.Minute
	githubMaxWait       = time.Hour // as router.ParseRetryAfter caps Retry-After
	// githubMaxAnswer bounds what is read of an answer. An issue echoes
	// its body: 65,536 characters, at most 6 bytes each in JSON. Search
	// asks for githubSearchPage issues at most.
	githubMaxAnswer  = 1 << 20
	githubSearchPage = "2"
)

func (c *githubConfig) validate() (*url.URL, error) {
	var p configProblems
	if msg := checkRepository(c.Repository); msg != "" {
		p.add("repository", "%s", msg)
	}
	switch {
	case c.Token == "":
		p.add("token", "must be set")
	case strings.ContainsFunc(c.Token.Reveal(), func(r rune) bool { return r <= ' ' || r == 0x7f }):
		p.add("token", "must be one word, without spaces") // never quote it
	}
	base, msg := ticketBaseURL(c.BaseURL, githubAPIURL)
	if msg != "" {
		p.add("base_url", "%s", msg)
	}
	return base, p.err()
}

// checkRepository reports what is wrong with an "owner/name", which ends
// up in request paths.
func checkRepository(repo string) string {
	owner, name, ok := strings.Cut(repo, "/")
	word := func(s, extra string) bool {
		return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
			return r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(extra, r))
		})
	}
	switch {
	case !ok:
		return `want "owner/name"`
	case !word(owner, "-_") || len(owner) > 39:
		return "owner: want up to 39 letters, digits and hyphens"
	case !word(name, "-_.") || len(name) > 100 || name == "." || name == "..":
		return "name: want up to 100 letters, digits, '.', '-' and '_'"
	}
	return ""
}

// githubSink opens and comments on issues in one repository.
type githubSink struct {
	repo   string // "owner/name"
	base   *url.URL
	web    *url.URL // where people open issues, when an answer does not say
	token  string
	shown  string
	client *http.Client
	red    *redact.Redactor
}

var _ router.Sink = (*githubSink)(nil)

func newGitHubSink(r *Registry, _ string, c githubConfig) (*githubSink, error) {
	base, err := c.validate()
	if err != nil {
		return nil, err
	}
	token := c.Token.Reveal()
	return &githubSink{repo: c.Repository, base: base, web: githubWebRoot(base), token: token, shown: showURL(base), client: r.Client, red: redact.New(token)}, nil
}

// githubWebRoot is where people open the issues of the API at base:
// GitHub Enterprise Server serves its API at https://HOST/api/v3 and its
// pages at https://HOST; api.github.com, and a proxy of anything else,
// are taken to be github.com's.
func githubWebRoot(base *url.URL) *url.URL {
	if root, ok := strings.CutSuffix(base.Path, "/api/v3"); ok {
		return &url.URL{Scheme: base.Scheme, Host: base.Host, Path: root}
	}
	return &url.URL{Scheme: "https", Host: "github.com"}
}

// link describes issue number n, whose page GitHub answered as htmlURL
// (any, as decoded: a broken html_url must not cost an issue its answer,
// nor a search its result).
func (s *githubSink) link(n string, htmlURL any) router.Link {
	raw, _ := htmlURL.(string)
	page := answerURL(raw)
	if page == "" {
		owner, name, _ := strings.Cut(s.repo, "/")
		page = webPage(s.web, owner, name, "issues", n)
	}
	return newLink(n, "number", n, "url", page)
}

// githubIssue is the create request.
type githubIssue struct {
	Title     string   `json:"title"`
	Body      string   `json:"body"`
	Labels    []string `json:"labels,omitempty"`
	Assignees []string `json:"assignees,omitempty"`
}

// Deliver opens an issue, or comments on d.RemoteID when it is set.
func (s *githubSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	key := d.DedupKey
	if key == "" {
		key = d.ID
	}
	sum := sha256.Sum256([]byte(key))
	tag := "hookroute:" + hex.EncodeToString(sum[:8])
	return createOrFollowUp(ctx, d,
		func(ctx context.Context) (int, string, router.Link, error) {
			res, _, err := s.find(ctx, tag)
			return res.StatusCode, res.RemoteID, res.Link, err
		},
		s.comment,
		func(ctx context.Context, d *router.Delivery) (router.Result, error) { return s.create(ctx, d, tag) })
}

// create opens an issue marked with tag.
func (s *githubSink) create(ctx context.Context, d *router.Delivery, tag string) (router.Result, error) {
	// A title is one line; GitHub would keep the newlines as text.
	title := runes.Truncate(strings.Join(strings.Fields(d.Fields["subject"]), " "), githubMaxTitle)
	if title == "" {
		return router.Result{}, router.Permanent(errors.New("github: subject rendered empty"))
	}
	marker := "<!-- " + tag + " -->"
	body := marker
	if text := strings.TrimRight(d.Fields["body"], " \t\r\n"); text != "" {
		body = runes.Truncate(text, githubMaxBody-len(marker)-2) + "\n\n" + marker
	}
	assignees := splitList(d.Fields["assignees"])
	issue := githubIssue{Title: title, Body: body, Labels: splitList(d.Fields["labels"]), Assignees: assignees[:min(len(assignees), githubMaxAssignees)]}
	code, answer, err := s.do(ctx, http.MethodPost, "/repos/"+s.repo+"/issues", issue)
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("github: create issue: %w", err)
	}
	var created struct {
		Number  int64 `json:"number"`
		HTMLURL any   `json:"html_url"`
	}
	if json.Unmarshal(answer, &created) != nil || created.Number <= 0 {
		// Created, most likely, but we cannot say which: the retry
		// finds it by its marker.
		return router.Result{StatusCode: code}, errors.New("github: create issue: the answer has no issue number")
	}
	n := strconv.FormatInt(created.Number, 10)
	return router.Result{StatusCode: code, RemoteID: n, Link: s.link(n, created.HTMLURL)}, nil
}

// comment adds the body (or, without one, the subject) to issue
// d.RemoteID. Labels and assignees apply to new issues only.
func (s *githubSink) comment(ctx context.Context, d *router.Delivery) (router.Result, error) {
	if n, err := strconv.ParseUint(d.RemoteID, 10, 63); err != nil || n == 0 {
		return router.Result{}, router.Permanent(fmt.Errorf("github: remote id %q is not an issue number", d.RemoteID))
	}
	text := strings.TrimRight(d.Fields["body"], " \t\r\n")
	if text == "" {
		text = escapeMarkdown(strings.TrimSpace(d.Fields["subject"]))
	}
	if text == "" {
		return router.Result{}, router.Permanent(errors.New("github: subject and body rendered empty"))
	}
	path := "/repos/" + s.repo + "/issues/" + d.RemoteID + "/comments"
	code, answer, err := s.do(ctx, http.MethodPost, path, map[string]string{"body": runes.Truncate(text, githubMaxBody)})
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("github: comment on issue %s: %w", d.RemoteID, err)
	}
	var comment struct {
		HTMLURL any `json:"html_url"`
	}
	_ = json.Unmarshal(answer, &comment) // the comment is made: a link without its answer's url still is one
	page, _ := comment.HTMLURL.(string)
	return router.Result{StatusCode: code, RemoteID: d.RemoteID, Link: s.link(d.RemoteID, cmp.Or(githubIssuePage(page, d.RemoteID), recorded(d, "url")))}, nil
}

// githubIssuePage returns the page of issue n from the page of one of its
// comments, .../issues/{n}#issuecomment-{id}, "" if it is not one.
func githubIssuePage(commentURL, n string) string {
	page := answerURL(commentURL)
	if page == "" {
		return ""
	}
	u, err := url.Parse(page)
	if err != nil || !strings.HasSuffix(u.EscapedPath(), "/issues/"+n) {
		return ""
	}
	u.Fragment, u.RawFragment, u.RawQuery = "", "", ""
	return u.String()
}

// find looks for the issue an earlier attempt may have created, by the
// tag in its marker.
func (s *githubSink) find(ctx context.Context, tag string) (router.Result, bool, error) {
	q := url.Values{"q": {"repo:" + s.repo + ` in:body "` + tag + `"`}, "per_page": {githubSearchPage}}
	code, answer, err := s.do(ctx, http.MethodGet, "/search/issues?"+q.Encode(), nil)
	if err != nil {
		// Creating blind could make a second issue: wait for search.
		return router.Result{StatusCode: code}, false, fmt.Errorf("github: search for an issue made by an earlier attempt: %w", err)
	}
	var found struct {
		Items []struct {
			Number      int64           `json:"number"`
			HTMLURL     any             `json:"html_url"`
			Body        string          `json:"body"`
			PullRequest json.RawMessage `json:"pull_request"`
		} `json:"items"`
	}
	if err := json.Unmarshal(answer, &found); err != nil {
		return router.Result{StatusCode: code}, false, fmt.Errorf("github: search for an issue made by an earlier attempt: %v", err)
	}
	for _, it := range found.Items {
		// Search matches words, loosely: check the tag is really there.
		if it.PullRequest == nil && it.Number > 0 && strings.Contains(it.Body, tag) {
			n := strconv.FormatInt(it.Number, 10)
			return router.Result{StatusCode: code, RemoteID: n, Link: s.link(n, it.HTMLURL)}, true, nil
		}
	}
	return router.Result{}, false, nil
}

// do sends one API request and classifies the answer. Unlike send, it
// reads GitHub's rate-limit headers.
func (s *githubSink) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	req, err := jsonRequest(ctx, method, endpoint(s.base, path), body)
	if err != nil {
		return 0, nil, err // permanent, and without the token
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", githubAPIVersion)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("User-Agent", userAgent) // GitHub refuses requests without one
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, s.red.Err(err, s.shown)
	}
	// Not readBody: GitHub answers an issue with its whole body, which
	// may be far over maxResponseBody.
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, githubMaxAnswer))
	_ = resp.Body.Close()
	answer = []byte(s.red.Text(string(answer)))
	return resp.StatusCode, answer, githubClassify(resp.StatusCode, resp.Header, answer, time.Now())
}

// githubClassify is classifyStatus, plus GitHub's rate limits, which may
// come as 403: Retry-After (secondary limits) is a floor; a spent primary
// limit (X-RateLimit-Remaining: 0) waits until X-RateLimit-Reset; a
// secondary limit without Retry-After waits a minute. Any other 403 (no
// access, locked issue) is permanent, as are 404 and 422.
func githubClassify(code int, h http.Header, body []byte, now time.Time) error {
	msg := githubMessage(body)
	if code != http.StatusForbidden && code != http.StatusTooManyRequests {
		return classifyStatus(code, h, msg, now)
	}
	err := &statusError{code: code, snippet: snippet(msg)}
	after := router.ParseRetryAfter(h.Get("Retry-After"), now)
	if after == 0 && h.Get("X-RateLimit-Remaining") == "0" {
		after = githubSecondaryWait
		if reset, perr := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); perr == nil {
			after = min(max(time.Unix(reset, 0).Sub(now), time.Second), githubMaxWait)
		}
	}
	if after == 0 && strings.Contains(strings.ToLower(string(msg)), "secondary rate limit") {
		after = githubSecondaryWait
	}
	switch {
	case after > 0:
		return &router.RetryAfterError{Err: err, After: after}
	case code == http.StatusTooManyRequests:
		return err
	}
	return router.Permanent(err)
}

// githubMessage shortens a GitHub error answer, {"message": "Validation
// Failed", "errors": [{"resource": "Issue", "field": "title", "code":
// "missing_field"}]}, to "Validation Failed (title missing_field)". Other
// bodies are returned as they are.
func githubMessage(body []byte) []byte {
	var e struct {
		Message string            `json:"message"`
		Errors  []json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || e.Message == "" {
		return body
	}
	var parts []string
	for _, raw := range e.Errors {
		var fe struct{ Field, Code, Message string }
		var text string
		if json.Unmarshal(raw, &text) != nil && json.Unmarshal(raw, &fe) == nil {
			text = strings.TrimSpace(fe.Field + " " + fe.Code)
			if fe.Message != "" {
				text = fe.Message
			}
		}
		if text != "" {
			parts = append(parts, text)
		}
	}
	if len(parts) > 0 {
		e.Message += " (" + strings.Join(parts, "; ") + ")"
	}
	return []byte(e.Message)
}

// escapeMarkdown keeps visitor text from becoming GitHub markup: every
// ASCII character that CommonMark, the GFM extensions or GitHub's math
// give a meaning to is backslash-escaped. GitHub finds @mentions and
// #123, GH-123 references after rendering, where a backslash is gone, so
// those are broken with an empty HTML comment: they read the same and
// notify nobody.
func escapeMarkdown(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	var prev1, prev2 rune // the two runes before r, for GH-123
	for _, r := range s {
		switch {
		case r == '@':
			b.WriteString("@<!-- -->")
		case r == '#':
			b.WriteString(`\#<!-- -->`)
		case r == '-' && unicode.ToUpper(prev2) == 'G' && unicode.ToUpper(prev1) == 'H':
			b.WriteString(`\-<!-- -->`)
		case strings.ContainsRune(markdownSpecial, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
		prev2, prev1 = prev1, r
	}
	return b.String()
}

// markdownSpecial lists the characters escapeMarkdown escapes: emphasis,
// code, links, images, raw HTML and entities (&#64; is an @), headings,
// lists, block quotes, tables, strikethrough and $math$.
const markdownSpecial = "\\`*_{}[]<>()#+-.!|~&=$"
