package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("servicenow",
		ticketFields(escapeCodeTag,
			// "1" (high) to "3" (low); empty leaves the table's default.
			router.FieldSpec{Name: "urgency"},
			router.FieldSpec{Name: "impact"},
		),
		func() serviceNowConfig { return serviceNowConfig{Table: "incident"} },
		newServiceNowSink)
}

// serviceNowConfig configures the ServiceNow sink (Table API), which
// creates one record (an incident by default) per delivery and adds work
// notes to it when the route's dedup_key finds one created earlier.
//
// The Table API has no idempotency key. Each record gets correlation_id =
// the dedup key, else the delivery id (used as is when it is at most 100
// characters of [A-Za-z0-9._:@/-], the field's size and a safe value in
// an encoded query; otherwise hookroute-<32 hex digits of its sha256>).
// A retried delivery with no record on record first queries
// correlation_id and takes the record found instead of creating a second
// one, in case an earlier attempt created it but timed out before the
// answer came. Assumptions (unverified): correlation_id exists on the
// table (it does on task and its children, such as incident) and the
// integration user may read it; ServiceNow answers 429 with Retry-After
// when an instance's rate limit rule trips.
//
// A delivery's Link is the record's sys_id as "id", its number
// (INC0010001) as "number" where an answer gave it, and as "url" its form
// in the classic UI, {instance}/nav_to.do?uri={table}.do?sys_id={sys_id}
// (https://{instance}.service-now.com when instance is set, else
// base_url).
type serviceNowConfig struct {
	// Instance is the instance's name: acme for
	// https://acme.service-now.com. With base_url it names only where
	// people open records.
	Instance string `yaml:"instance"`
	// BaseURL replaces https://{instance}.service-now.com (a proxy, a
	// test).
	BaseURL string `yaml:"base_url"`
	// Username and Password (as ${VAR}) authenticate with HTTP Basic, as
	// an integration user.
	Username string        `yaml:"username"`
	Password router.Secret `yaml:"password"`
	// OAuthToken is an OAuth access token (as ${VAR}), sent as Bearer;
	// instead of username and password.
	OAuthToken router.Secret `yaml:"oauth_token"`
	// Table is where records go; default incident.
	Table string `yaml:"table"`
	// CallerID and AssignmentGroup set those reference fields on every
	// record: a sys_id, or a display value the instance resolves.
	CallerID        string `yaml:"caller_id"`
	AssignmentGroup string `yaml:"assignment_group"`
}

// ServiceNow's field sizes on incident: short_description holds 160
// characters; description and journal entries (work_notes) are taken as
// 4000, the common dictionary size (an instance may allow more).
const (
	snowMaxShort = 160
	snowMaxText  = 4000
	snowMaxCorr  = 100
	// snowMaxNumber bounds a record's number (INC0010001) taken from an
	// answer, so that a broken answer cannot fill a template; numbers
	// are far shorter.
	snowMaxNumber = 40
)

var (
	snowInstanceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)
	snowTableName    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	snowSafeCorr     = regexp.MustCompile(`^[A-Za-z0-9._:@/-]+$`)
	// [code]…[/code] in a journal field is rendered as HTML by instances
	// that allow it (glide.ui.security.allow_codetag).
	snowCodeTag = regexp.MustCompile(`(?i)\[(/?code)\]`)
)

// escapeCodeTag keeps visitor text from opening a [code] block in work
// notes: a zero-width space after '[' breaks the tag and reads the same.
func escapeCodeTag(s string) string { return snowCodeTag.ReplaceAllString(s, "[\u200b$1]") }

func (c *serviceNowConfig) validate() (*url.URL, error) {
	var p configProblems
	c.validateAuth(&p)
	u := c.baseURL(&p)
	if !snowTableName.MatchString(c.Table) {
		p.add("table", "want a table name such as incident")
	}
	return u, p.err()
}

// validateAuth wants one way to authenticate: username with password, or
// oauth_token.
func (c *serviceNowConfig) validateAuth(p *configProblems) {
	switch {
	case c.OAuthToken != "" && (c.Username != "" || c.Password != ""):
		p.add("oauth_token", "set either username with password, or oauth_token, not both")
	case c.OAuthToken != "":
		if snowBadToken(c.OAuthToken.Reveal()) {
			p.add("oauth_token", "must be one word, without spaces") // never quote it
		}
	case c.Username == "" && c.Password == "":
		p.add("password", "set username with password, or oauth_token")
	default:
		if c.Username == "" {
			p.add("username", "must be set with password")
		} else if snowBadUser(c.Username) {
			p.add("username", "must be one line, without ':'")
		}
		if c.Password == "" {
			p.add("password", "must be set with username")
		} else if snowBadPassword(c.Password.Reveal()) {
			p.add("password", "must be one line")
		}
	}
}

// snowBadToken, snowBadUser and snowBadPassword report credentials that
// cannot go into an Authorization header: a control character would end
// it, a space would split a Bearer token, and ':' ends a Basic user name.
func snowBadToken(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

func snowBadUser(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == ':' })
}

func snowBadPassword(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// baseURL returns base_url, else the instance's own URL; nil after a
// problem.
func (c *serviceNowConfig) baseURL(p *configProblems) *url.URL {
	base := c.BaseURL
	switch {
	case c.Instance != "" && !snowInstanceName.MatchString(c.Instance):
		p.add("instance", "want the instance's name only: acme for https://acme.service-now.com")
	case base != "":
	case c.Instance == "":
		p.add("instance", "must be set (acme for https://acme.service-now.com), or base_url")
	default:
		base = "https://" + strings.ToLower(c.Instance) + ".service-now.com"
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

// serviceNowSink creates records in one table and adds work notes to them.
type serviceNowSink struct {
	conf   serviceNowConfig
	base   *url.URL
	web    *url.URL // where people open records
	shown  string   // the base URL as errors show it
	auth   string   // the Authorization header
	client *http.Client
	red    *redact.Redactor
}

var _ router.Sink = (*serviceNowSink)(nil)

func newServiceNowSink(r *Registry, _ string, c serviceNowConfig) (*serviceNowSink, error) {
	base, err := c.validate()
	if err != nil {
		return nil, err
	}
	s := &serviceNowSink{conf: c, base: base, web: siteRoot(c.Instance, ".service-now.com", base), shown: showURL(base), client: r.Client}
	s.auth, s.red = authHeader(c.OAuthToken, c.Username, c.Password)
	return s, nil
}

// Deliver adds a work note to d.RemoteID (a sys_id) when set, and
// otherwise creates a record (after looking for one an earlier attempt
// may have created), returning its sys_id. 429 and 5xx are retried,
// honouring Retry-After; other 4xx are permanent.
func (s *serviceNowSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	corr := snowCorrelationID(d)
	return createOrFollowUp(ctx, d,
		func(ctx context.Context) (int, string, router.Link, error) { return s.find(ctx, corr) },
		s.note,
		func(ctx context.Context, d *router.Delivery) (router.Result, error) { return s.create(ctx, d, corr) })
}

// snowRecord is what a create sends; empty fields keep the table's
// defaults.
type snowRecord struct {
	ShortDescription string `json:"short_description"`
	Description      string `json:"description,omitempty"`
	Urgency          string `json:"urgency,omitempty"`
	Impact           string `json:"impact,omitempty"`
	CallerID         string `json:"caller_id,omitempty"`
	AssignmentGroup  string `json:"assignment_group,omitempty"`
	CorrelationID    string `json:"correlation_id"`
}

func (s *serviceNowSink) create(ctx context.Context, d *router.Delivery, corr string) (router.Result, error) {
	rec := snowRecord{
		ShortDescription: runes.Truncate(strings.Join(strings.FieldsFunc(d.Fields["subject"], snowSeparator), " "), snowMaxShort),
		Description:      runes.Truncate(snowPlain(d.Fields["body"]), snowMaxText),
		CallerID:         s.conf.CallerID,
		AssignmentGroup:  s.conf.AssignmentGroup,
		CorrelationID:    corr,
	}
	if rec.ShortDescription == "" {
		return router.Result{}, router.Permanent(errors.New("servicenow: subject rendered empty"))
	}
	for _, f := range []struct {
		name string
		to   *string
	}{{"urgency", &rec.Urgency}, {"impact", &rec.Impact}} {
		v := strings.TrimSpace(d.Fields[f.name])
		if v != "" && v != "1" && v != "2" && v != "3" {
			return router.Result{}, router.Permanent(fmt.Errorf("servicenow: %s rendered %q, want 1, 2 or 3", f.name, runes.Truncate(v, 20)))
		}
		*f.to = v
	}
	var out struct {
		Result snowFound `json:"result"`
	}
	code, err := s.do(ctx, http.MethodPost, "/api/now/table/"+s.conf.Table, rec, &out)
	if err == nil && out.Result.SysID == "" {
		// Created, probably: the retry looks for it by correlation_id.
		err = errors.New("the answer names no sys_id")
	}
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("servicenow: create %s: %w", s.conf.Table, err)
	}
	return router.Result{StatusCode: code, RemoteID: out.Result.SysID, Link: s.link(out.Result.SysID, out.Result.Number)}, nil
}

// snowFound is what the sink reads of a record in an answer. Number is
// any, as decoded: an odd number must not cost a record its answer, nor
// a query its result.
type snowFound struct {
	SysID  string `json:"sys_id"`
	Number any    `json:"number"`
}

// link describes record sysID, numbered number (nil if unknown). The
// Table API answers no page URL; the form's follows from the sys_id.
// ServiceNow documents it with the inner URI unescaped, which is how
// people know it; escaping all but its '?' and '=' keeps an odd sys_id
// from reaching the outer query.
func (s *serviceNowSink) link(sysID string, number any) router.Link {
	uri := s.conf.Table + ".do?sys_id=" + url.QueryEscape(sysID)
	uri = strings.NewReplacer("%3F", "?", "%3D", "=").Replace(url.QueryEscape(uri))
	n, _ := number.(string)
	if !deskWord(n) || len(n) > snowMaxNumber {
		n = ""
	}
	return newLink(sysID, "number", n, "url", webPage(s.web, "nav_to.do")+"?uri="+uri)
}

func (s *serviceNowSink) note(ctx context.Context, d *router.Delivery) (router.Result, error) {
	text := snowPlain(d.Fields["body"])
	if text == "" {
		text = snowPlain(d.Fields["subject"])
	}
	if text == "" {
		return router.Result{}, router.Permanent(errors.New("servicenow: subject and body rendered empty: no work note to add"))
	}
	path := "/api/now/table/" + s.conf.Table + "/" + url.PathEscape(d.RemoteID)
	code, answer, err := s.send(ctx, http.MethodPatch, path, map[string]string{"work_notes": runes.Truncate(text, snowMaxText)})
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("servicenow: add work note to %s: %w", d.RemoteID, err)
	}
	// The note is in: an answer without the record costs the link its
	// number, never a retry (which would add the note twice).
	var out struct {
		Result snowFound `json:"result"`
	}
	_ = json.Unmarshal(answer, &out)
	number := out.Result.Number
	if n, _ := number.(string); n == "" {
		number = recorded(d, "number")
	}
	return router.Result{StatusCode: code, RemoteID: d.RemoteID, Link: s.link(d.RemoteID, number)}, nil
}

// find returns the sys_id and Link of a record whose correlation_id is
// corr, "" if none.
func (s *serviceNowSink) find(ctx context.Context, corr string) (int, string, router.Link, error) {
	q := url.Values{"sysparm_query": {"correlation_id=" + corr}, "sysparm_limit": {"1"}, "sysparm_fields": {"sys_id,number"}}
	var out struct {
		Result []snowFound `json:"result"`
	}
	code, err := s.do(ctx, http.MethodGet, "/api/now/table/"+s.conf.Table+"?"+q.Encode(), nil, &out)
	if err != nil {
		return code, "", nil, fmt.Errorf("servicenow: look for a record created earlier: %w", err)
	}
	if len(out.Result) > 0 && out.Result[0].SysID != "" {
		found := out.Result[0]
		return code, found.SysID, s.link(found.SysID, found.Number), nil
	}
	return code, "", nil, nil
}

// do sends one request and decodes a 2xx answer into out (nil: ignored).
// An error answer's message and detail replace the raw body in the error
// text.
func (s *serviceNowSink) do(ctx context.Context, method, path string, body, out any) (int, error) {
	code, resp, err := s.send(ctx, method, path, body)
	if err != nil {
		return code, err
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return code, fmt.Errorf("unreadable answer (HTTP %d): %v", code, err)
		}
	}
	return code, nil
}

// send sends one request and returns a 2xx answer as it came. An error
// answer's message and detail replace the raw body in the error text.
func (s *serviceNowSink) send(ctx context.Context, method, path string, body any) (int, []byte, error) {
	req, err := jsonRequest(ctx, method, endpoint(s.base, path), body)
	if err != nil {
		return 0, nil, s.red.Err(err, s.shown)
	}
	req.Header.Set("Authorization", s.auth)
	code, resp, err := send(s.client, req, s.red, s.shown)
	if err != nil {
		var se *statusError
		if msg := snowErrorText(resp); msg != "" && errors.As(err, &se) {
			se.snippet = snippet([]byte(msg))
		}
		return code, nil, err
	}
	return code, resp, nil
}

// snowErrorText reads {"error": {"message", "detail"}, "status": "failure"}.
func snowErrorText(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Detail  string `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		return ""
	}
	if e.Error.Detail != "" && e.Error.Detail != e.Error.Message {
		return e.Error.Message + ": " + e.Error.Detail
	}
	return e.Error.Message
}

func snowSeparator(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// snowPlain trims text and drops its control characters but line breaks
// and tabs.
func snowPlain(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || r == utf8.RuneError) {
			return -1
		}
		return r
	}, s))
}

// snowCorrelationID names the record made for d (see serviceNowConfig).
func snowCorrelationID(d *router.Delivery) string {
	key := d.DedupKey
	if key == "" {
		key = d.ID
	}
	if utf8.RuneCountInString(key) <= snowMaxCorr && snowSafeCorr.MatchString(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "hookroute-" + hex.EncodeToString(sum[:16])
}
