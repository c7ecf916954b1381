package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("jira",
		// The body becomes Atlassian Document Format text nodes (see
		// adfFromText), which Jira never reads as markup: no escaping.
		ticketFields(nil,
			// Comma-separated labels; whitespace inside one becomes '-'
			// (Jira labels cannot hold spaces).
			router.FieldSpec{Name: "labels"},
			// A priority name the project knows ("High"); empty leaves
			// the project's default.
			router.FieldSpec{Name: "priority"},
		),
		func() jiraConfig { return jiraConfig{IssueType: "Task"} },
		newJiraSink)
}

// jiraConfig configures the Jira Cloud sink (REST API v3), which creates
// one issue per delivery and comments on it when the route's dedup_key
// finds one created earlier.
//
// Jira has no idempotency key. Every issue carries the label
// hookroute-<16 hex digits of sha256(dedup key, else delivery id)>; a
// retried delivery with no issue on record first searches for that label
// (GET /rest/api/3/search/jql, the current Cloud search; the classic
// /rest/api/3/search answers 410) and takes the issue found instead of
// creating a second one, in case an earlier attempt created it but timed
// out before the answer came. Assumption: that search is eventually
// consistent, so an issue created a moment before may be missed; the
// router's backoff between attempts makes that unlikely, not impossible.
//
// A delivery's Link is the issue's key as "id" and "key", and as "url"
// its page, {site}/browse/{key}: https://{site}.atlassian.net when site
// is set, else base_url, except Atlassian's OAuth gateway
// (api.atlassian.com/ex/jira/…), which has no pages: with oauth_token,
// set site as well for links to carry a url.
type jiraConfig struct {
	// Site is the Cloud site's name: acme for https://acme.atlassian.net.
	// With base_url it names only where people open issues.
	Site string `yaml:"site"`
	// BaseURL replaces https://{site}.atlassian.net (a proxy, a test).
	// With oauth_token it is required: OAuth 2.0 apps call
	// https://api.atlassian.com/ex/jira/{cloud id}, not the site.
	BaseURL string `yaml:"base_url"`
	// Email and APIToken (as ${VAR}) authenticate with HTTP Basic, as an
	// Atlassian account and one of its API tokens.
	Email    string        `yaml:"email"`
	APIToken router.Secret `yaml:"api_token"`
	// OAuthToken is an OAuth 2.0 access token (as ${VAR}), sent as
	// Bearer; instead of email and api_token.
	OAuthToken router.Secret `yaml:"oauth_token"`
	// Project is the key of the project issues go to (SUP).
	Project string `yaml:"project"`
	// IssueType names the issue type to create; default Task.
	IssueType string `yaml:"issue_type"`
}

// Jira's limits, as documented: a summary holds 255 characters and a text
// field (description, comment) 32,767; labels are at most 255 characters.
// The ADF budget counts bytes of the JSON document, more than Jira's
// characters, so it stays under the limit with room to spare.
const (
	jiraMaxSummary = 255
	jiraMaxLabel   = 255
	jiraMaxADF     = 32000
	jiraLabelStem  = "hookroute-"
)

var (
	jiraSiteName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)
	jiraProjectKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// jiraBadToken reports a credential that cannot be one header word.
func jiraBadToken(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

func (c *jiraConfig) validate() (*url.URL, error) {
	var p configProblems
	c.validateAuth(&p)
	u := c.baseURL(&p)
	if !jiraProjectKey.MatchString(c.Project) {
		p.add("project", "want a project key such as SUP (capital letters, digits and _, starting with a letter)")
	}
	if strings.TrimSpace(c.IssueType) == "" {
		p.add("issue_type", "must name an issue type (default Task)")
	}
	return u, p.err()
}

// validateAuth wants one way to authenticate: email with api_token, or
// oauth_token.
func (c *jiraConfig) validateAuth(p *configProblems) {
	switch {
	case c.OAuthToken != "" && (c.Email != "" || c.APIToken != ""):
		p.add("oauth_token", "set either email with api_token, or oauth_token, not both")
	case c.OAuthToken != "":
		if jiraBadToken(c.OAuthToken.Reveal()) {
			p.add("oauth_token", "must be one word, without spaces") // never quote it
		}
	case c.Email == "" && c.APIToken == "":
		p.add("api_token", "set email with api_token (an Atlassian API token), or oauth_token")
	default:
		if c.Email == "" {
			p.add("email", "must be set with api_token")
		} else if jiraBadToken(c.Email) || strings.Contains(c.Email, ":") || !strings.Contains(c.Email, "@") {
			p.add("email", "must be the email address of the Atlassian account")
		}
		if c.APIToken == "" {
			p.add("api_token", "must be set with email")
		} else if jiraBadToken(c.APIToken.Reveal()) {
			p.add("api_token", "must be one word, without spaces")
		}
	}
}

// baseURL returns base_url, else the site's own URL; nil after a problem.
func (c *jiraConfig) baseURL(p *configProblems) *url.URL {
	base := c.BaseURL
	switch {
	case c.Site != "" && !jiraSiteName.MatchString(c.Site):
		p.add("site", "want the site's name only: acme for https://acme.atlassian.net")
	case base != "":
	case c.Site == "":
		p.add("site", "must be set (acme for https://acme.atlassian.net), or base_url")
	case c.OAuthToken != "":
		p.add("base_url", "must be set with oauth_token: OAuth 2.0 apps call https://api.atlassian.com/ex/jira/{cloud id}, not the site")
	default:
		base = "https://" + strings.ToLower(c.Site) + ".atlassian.net"
	}
	if base == "" {
		return nil
	}
	u, msg := ticketBaseURL(base, "")
	if msg != "" {
		p.add("base_url", "%s", msg)
	}
	return u
}

// jiraSink creates issues in one project and comments on them.
type jiraSink struct {
	conf   jiraConfig
	base   *url.URL
	web    *url.URL // where people open issues; nil: nowhere known
	shown  string   // the base URL as errors show it
	auth   string   // the Authorization header
	client *http.Client
	red    *redact.Redactor
}

var _ router.Sink = (*jiraSink)(nil)

func newJiraSink(r *Registry, _ string, c jiraConfig) (*jiraSink, error) {
	base, err := c.validate()
	if err != nil {
		return nil, err
	}
	s := &jiraSink{conf: c, base: base, web: siteRoot(c.Site, ".atlassian.net", base), shown: showURL(base), client: r.Client}
	if c.Site == "" && jiraGateway(base) {
		s.web = nil
	}
	s.auth, s.red = authHeader(c.OAuthToken, c.Email, c.APIToken)
	return s, nil
}

// jiraGateway reports whether base is Atlassian's API gateway for OAuth
// apps, https://api.atlassian.com/ex/jira/{cloud id}, whose /browse
// pages do not exist.
func jiraGateway(base *url.URL) bool {
	return strings.EqualFold(base.Hostname(), "api.atlassian.com") || strings.HasPrefix(base.Path, "/ex/jira/")
}

// link describes issue key: Jira answers only the API's URL (self), and
// an issue's page follows from its key.
func (s *jiraSink) link(key string) router.Link {
	return newLink(key, "key", key, "url", webPage(s.web, "browse", key))
}

// Deliver comments on d.RemoteID when set, and otherwise creates an issue
// (after looking for one an earlier attempt may have created), returning
// its key. 429 and 5xx are retried, honouring Retry-After; other 4xx are
// permanent.
func (s *jiraSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	label := jiraMarker(d)
	return createOrFollowUp(ctx, d,
		func(ctx context.Context) (int, string, router.Link, error) {
			code, key, err := s.find(ctx, label)
			if key == "" {
				return code, "", nil, err
			}
			return code, key, s.link(key), err
		},
		s.comment,
		func(ctx context.Context, d *router.Delivery) (router.Result, error) { return s.create(ctx, d, label) })
}

// jiraIssueFields is the create request's "fields".
type jiraIssueFields struct {
	Project     jiraRef  `json:"project"`
	IssueType   jiraRef  `json:"issuetype"`
	Summary     string   `json:"summary"`
	Description *adfNode `json:"description,omitempty"`
	Labels      []string `json:"labels"`
	Priority    *jiraRef `json:"priority,omitempty"`
}

type jiraRef struct {
	Key  string `json:"key,omitempty"`
	Name string `json:"name,omitempty"`
}

func (s *jiraSink) create(ctx context.Context, d *router.Delivery, label string) (router.Result, error) {
	f := jiraIssueFields{
		Project:     jiraRef{Key: s.conf.Project},
		IssueType:   jiraRef{Name: s.conf.IssueType},
		Summary:     jiraSummary(d.Fields["subject"]),
		Description: adfFromText(d.Fields["body"]),
		Labels:      jiraLabels(d.Fields["labels"], label),
	}
	if f.Summary == "" {
		return router.Result{}, router.Permanent(errors.New("jira: subject rendered empty"))
	}
	if p := strings.TrimSpace(d.Fields["priority"]); p != "" {
		f.Priority = &jiraRef{Name: p}
	}
	var out struct {
		Key string `json:"key"`
	}
	code, err := s.do(ctx, http.MethodPost, "/rest/api/3/issue", map[string]any{"fields": f}, &out)
	if err == nil && out.Key == "" {
		// Created, probably: the retry searches for it by label.
		err = errors.New("the answer names no issue key")
	}
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("jira: create issue: %w", err)
	}
	return router.Result{StatusCode: code, RemoteID: out.Key, Link: s.link(out.Key)}, nil
}

func (s *jiraSink) comment(ctx context.Context, d *router.Delivery) (router.Result, error) {
	body := adfFromText(d.Fields["body"])
	if body == nil {
		body = adfFromText(d.Fields["subject"])
	}
	if body == nil {
		return router.Result{}, router.Permanent(errors.New("jira: subject and body rendered empty: nothing to comment"))
	}
	path := "/rest/api/3/issue/" + url.PathEscape(d.RemoteID) + "/comment"
	code, err := s.do(ctx, http.MethodPost, path, map[string]any{"body": body}, nil)
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("jira: comment on %s: %w", d.RemoteID, err)
	}
	return router.Result{StatusCode: code, RemoteID: d.RemoteID, Link: s.link(d.RemoteID)}, nil
}

// find returns the key of an issue carrying label, "" if none.
func (s *jiraSink) find(ctx context.Context, label string) (int, string, error) {
	q := url.Values{"jql": {`labels = "` + label + `"`}, "fields": {"key"}, "maxResults": {"1"}}
	var out struct {
		Issues []struct {
			Key string `json:"key"`
		} `json:"issues"`
	}
	code, err := s.do(ctx, http.MethodGet, "/rest/api/3/search/jql?"+q.Encode(), nil, &out)
	if err != nil {
		return code, "", fmt.Errorf("jira: search for an issue created earlier: %w", err)
	}
	if len(out.Issues) > 0 {
		return code, out.Issues[0].Key, nil
	}
	return code, "", nil
}

// do sends one request and decodes a 2xx answer into out (nil: ignored).
// An error answer's errorMessages and errors replace the raw body in the
// error text.
func (s *jiraSink) do(ctx context.Context, method, path string, body, out any) (int, error) {
	req, err := jsonRequest(ctx, method, endpoint(s.base, path), body)
	if err != nil {
		return 0, s.red.Err(err, s.shown)
	}
	req.Header.Set("Authorization", s.auth)
	code, resp, err := send(s.client, req, s.red, s.shown)
	if err != nil {
		var se *statusError
		if msg := jiraErrorText(resp); msg != "" && errors.As(err, &se) {
			se.snippet = snippet([]byte(msg))
		}
		return code, err
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return code, fmt.Errorf("unreadable answer (HTTP %d): %v", code, err)
		}
	}
	return code, nil
}

// jiraErrorText reads Jira's {"errorMessages": [...], "errors": {...}}.
func jiraErrorText(body []byte) string {
	var e struct {
		Messages []string          `json:"errorMessages"`
		Errors   map[string]string `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	parts := e.Messages
	for _, k := range slices.Sorted(maps.Keys(e.Errors)) {
		parts = append(parts, k+": "+e.Errors[k])
	}
	return strings.Join(parts, "; ")
}

// jiraMarker is the label that finds the issue made for d.
func jiraMarker(d *router.Delivery) string {
	key := d.DedupKey
	if key == "" {
		key = d.ID
	}
	sum := sha256.Sum256([]byte(key))
	return jiraLabelStem + hex.EncodeToString(sum[:])[:16]
}

// jiraSummary makes a summary one line (Jira refuses line breaks in it)
// of at most jiraMaxSummary characters.
func jiraSummary(s string) string {
	return runes.Truncate(strings.Join(strings.FieldsFunc(s, jiraSeparator), " "), jiraMaxSummary)
}

// jiraLabels reads the labels field, then adds marker. A label's inner
// whitespace becomes '-'.
func jiraLabels(field, marker string) []string {
	out := []string{}
	seen := map[string]bool{marker: true}
	for _, l := range splitList(field) {
		l = runes.Truncate(strings.Join(strings.FieldsFunc(l, jiraSeparator), "-"), jiraMaxLabel)
		if l != "" && !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return append(out, marker)
}

func jiraSeparator(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// adfNode is an Atlassian Document Format node; the sink makes only doc,
// paragraph, text and hardBreak.
type adfNode struct {
	Type    string    `json:"type"`
	Version int       `json:"version,omitempty"`
	Text    string    `json:"text,omitempty"`
	Content []adfNode `json:"content,omitempty"`
}

// What each node adds to the JSON document, with its comma.
const (
	adfDocCost   = len(`{"type":"doc","version":1,"content":[]}`)
	adfParaCost  = len(`{"type":"paragraph","content":[]},`)
	adfTextCost  = len(`{"type":"text","text":""},`)
	adfBreakCost = len(`{"type":"hardBreak"},`)
	adfCutMark   = "…"
)

// adfFromText turns plain text into an ADF document: one paragraph per
// block of lines between blank lines, a hardBreak between the lines of a
// block. Text stays text whatever it holds (*bold*, <b>, {code},
// [link|http://x] show as typed). Control characters other than tab are
// dropped, and the document is cut, marked with "…", to jiraMaxADF bytes
// of JSON. It returns nil for text with nothing to show.
func adfFromText(s string) *adfNode {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	s = strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || r == utf8.RuneError) {
			return -1
		}
		return r
	}, s)
	// Always keep room for a text node holding the cut mark.
	left := jiraMaxADF - adfDocCost - adfTextCost - len(adfCutMark)
	doc := &adfNode{Type: "doc", Version: 1}
	open := false // a paragraph is open: the next line follows a hardBreak
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRightFunc(line, unicode.IsSpace)
		if line == "" {
			open = false
			continue
		}
		if !open {
			if left < adfParaCost+adfTextCost+1 {
				adfMarkCut(doc)
				break
			}
			left -= adfParaCost
			doc.Content = append(doc.Content, adfNode{Type: "paragraph"})
			open = true
		} else {
			if left < adfBreakCost+adfTextCost+1 {
				adfMarkCut(doc)
				break
			}
			left -= adfBreakCost
			adfAppend(doc, adfNode{Type: "hardBreak"})
		}
		left -= adfTextCost
		text, cut := line, false
		for i, r := range line {
			c := adfCost(r)
			if c > left {
				text, cut = line[:i]+adfCutMark, true
				break
			}
			left -= c
		}
		adfAppend(doc, adfNode{Type: "text", Text: text})
		if cut {
			break
		}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc
}

// adfAppend adds an inline node to the document's last paragraph.
func adfAppend(doc *adfNode, n adfNode) {
	p := &doc.Content[len(doc.Content)-1]
	p.Content = append(p.Content, n)
}

// adfMarkCut ends the last text node with the cut mark.
func adfMarkCut(doc *adfNode) {
	p := &doc.Content[len(doc.Content)-1]
	p.Content[len(p.Content)-1].Text += adfCutMark
}

// adfCost is the most JSON bytes r can take in a string (encoding/json
// escapes <, > and & as \u003c and the like).
func adfCost(r rune) int {
	switch {
	case r == '"' || r == '\\' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == 0x2028 || r == 0x2029:
		return 6
	default:
		return utf8.RuneLen(r)
	}
}
