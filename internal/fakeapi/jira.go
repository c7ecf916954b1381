package fakeapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Jira is a fake Jira Cloud REST API v3, written from Atlassian's
// documentation. It serves:
//
//   - POST /rest/api/3/issue: {"fields": {"project": {"key"}, "issuetype":
//     {"name"}, "summary", "description" (an ADF document), "labels",
//     "priority": {"name"}}} → 201 {"id", "key", "self"}; keys count per
//     project (SUP-1, SUP-2, …), ids from 10000;
//   - POST /rest/api/3/issue/{issueIdOrKey}/comment: {"body": ADF} → 201;
//   - GET /rest/api/3/search/jql?jql=labels = "…"&maxResults=n → 200
//     {"issues": [{"id", "key", "self"}], "isLast": true}; only that JQL
//     form is understood (anything else is a 400);
//   - /rest/api/3/search (the classic search) → 410 Gone, as on Cloud.
//
// It checks the Authorization header (HTTP Basic email:api_token, or a
// Bearer token given to AcceptBearer) and answers 401 otherwise. Errors
// have Jira's shape, {"errorMessages": [...], "errors": {"field": "…"}},
// and its validation is strict where Jira's is: a summary over 255
// characters or with a line break, a description that is not ADF, labels
// with spaces, unknown fields and priorities are 400s. The fake accepts
// ADF documents made of paragraphs, text (with marks) and hardBreaks, and
// stores them as plain text. Safe for concurrent use.
type Jira struct {
	basic string

	mu        sync.Mutex
	bearer    string
	issues    []*JiraIssue
	counters  map[string]int // per project key
	nextID    int
	failN     int
	failCode  int
	failAfter string
	delay     time.Duration
	requests  []string
}

// JiraIssue is an issue as the fake stores it. Description and Comments
// are the ADF documents as plain text: paragraphs separated by a blank
// line, hardBreaks as line breaks.
type JiraIssue struct {
	ID, Key, Project, IssueType string
	Summary, Description        string
	Labels                      []string
	Priority                    string // "" when not set
	Comments                    []string
}

// NewJira returns a fake that accepts HTTP Basic with email and apiToken.
func NewJira(email, apiToken string) *Jira {
	return &Jira{
		basic:    "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+apiToken)),
		counters: map[string]int{},
		nextID:   10000,
	}
}

// AcceptBearer makes the fake also accept "Authorization: Bearer token"
// (an OAuth 2.0 access token).
func (j *Jira) AcceptBearer(token string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.bearer = token
}

// Fail makes the next n requests answer status, with Retry-After when
// retryAfter is not empty (a 429 also carries Jira's X-RateLimit-* and
// RateLimit-Reason headers). Nothing is created by a failed request.
func (j *Jira) Fail(n, status int, retryAfter string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.failN, j.failCode, j.failAfter = n, status, retryAfter
}

// DelayNextCreate makes the next successful create store its issue and
// then hold the answer back for d, or until the client gives up: a client
// whose timeout is shorter sees a failure although the issue exists.
func (j *Jira) DelayNextCreate(d time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.delay = d
}

// Issues returns copies of the issues created, oldest first.
func (j *Jira) Issues() []JiraIssue {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]JiraIssue, len(j.issues))
	for i, is := range j.issues {
		out[i] = *is
		out[i].Labels = slices.Clone(is.Labels)
		out[i].Comments = slices.Clone(is.Comments)
	}
	return out
}

// Requests lists the requests received, as "METHOD /path", oldest first.
func (j *Jira) Requests() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.requests)
}

var (
	jiraCommentPath = regexp.MustCompile(`^/rest/api/3/issue/([^/]+)/comment$`)
	jiraLabelJQL    = regexp.MustCompile(`^\s*labels\s*=\s*"([^"\\]+)"\s*$`)
	jiraKeyPattern  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	jiraPriorities  = []string{"Highest", "High", "Medium", "Low", "Lowest"}
)

// ServeHTTP implements http.Handler.
func (j *Jira) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.mu.Lock()
	j.requests = append(j.requests, r.Method+" "+r.URL.Path)
	if j.failN > 0 {
		j.failN--
		code, after := j.failCode, j.failAfter
		j.mu.Unlock()
		j.fail(w, code, after)
		return
	}
	authorized := r.Header.Get("Authorization") == j.basic || j.bearer != "" && r.Header.Get("Authorization") == "Bearer "+j.bearer
	j.mu.Unlock()
	if !authorized {
		jiraError(w, http.StatusUnauthorized, []string{"You are not authenticated. Authentication required to perform this operation."}, nil)
		return
	}
	path := r.URL.Path
	switch m := jiraCommentPath.FindStringSubmatch(path); {
	case path == "/rest/api/3/issue":
		if jiraMethod(w, r, http.MethodPost) && jiraJSON(w, r) {
			j.create(w, r)
		}
	case m != nil:
		if jiraMethod(w, r, http.MethodPost) && jiraJSON(w, r) {
			j.comment(w, r, m[1])
		}
	case path == "/rest/api/3/search/jql":
		if jiraMethod(w, r, http.MethodGet) {
			j.search(w, r)
		}
	case path == "/rest/api/3/search" || path == "/rest/api/2/search":
		jiraError(w, http.StatusGone, []string{"The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."}, nil)
	default:
		jiraError(w, http.StatusNotFound, []string{"No resource at " + path}, nil)
	}
}

func (j *Jira) fail(w http.ResponseWriter, code int, after string) {
	if after != "" {
		w.Header().Set("Retry-After", after)
	}
	msg := http.StatusText(code)
	if code == http.StatusTooManyRequests {
		w.Header().Set("X-RateLimit-Limit", "100")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", time.Now().UTC().Add(time.Minute).Format(time.RFC3339))
		w.Header().Set("RateLimit-Reason", "jira-burst-based")
		msg = "Rate limit exceeded."
	}
	jiraError(w, code, []string{msg}, nil)
}

func (j *Jira) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Fields == nil {
		jiraError(w, http.StatusBadRequest, []string{"Invalid request payload. Refer to the REST API documentation and try again."}, nil)
		return
	}
	is, errs := jiraIssueFrom(req.Fields)
	if len(errs) > 0 {
		jiraError(w, http.StatusBadRequest, []string{}, errs)
		return
	}
	j.mu.Lock()
	j.counters[is.Project]++
	is.ID, is.Key = strconv.Itoa(j.nextID), fmt.Sprintf("%s-%d", is.Project, j.counters[is.Project])
	j.nextID++
	j.issues = append(j.issues, is)
	delay := j.delay
	j.delay = 0
	j.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	jiraWrite(w, http.StatusCreated, map[string]string{"id": is.ID, "key": is.Key, "self": jiraSelf(r, is.ID)})
}

// jiraIssueFrom checks a create request's fields the way Jira does.
func jiraIssueFrom(fields map[string]json.RawMessage) (*JiraIssue, map[string]string) {
	is, errs := &JiraIssue{}, map[string]string{}
	for name, raw := range fields {
		check, ok := jiraFields[name]
		if !ok {
			errs[name] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", name)
			continue
		}
		if msg := check(is, raw); msg != "" {
			errs[name] = msg
		}
	}
	for _, f := range jiraRequired {
		if _, ok := fields[f.name]; !ok {
			errs[f.name] = f.msg
		}
	}
	if is.Summary == "" && errs["summary"] == "" {
		errs["summary"] = "You must specify a summary of the issue."
	}
	return is, errs
}

// jiraFields are the fields a create may set. Each sets its part of the
// issue, even from a bad value, and returns Jira's message for a bad one.
var jiraFields = map[string]func(is *JiraIssue, raw json.RawMessage) string{
	"project":     jiraProject,
	"issuetype":   jiraIssueType,
	"priority":    jiraPriority,
	"summary":     jiraSummary,
	"description": jiraDescription,
	"labels":      jiraLabels,
}

// jiraRequired are the fields a create must have, with Jira's message for
// each one missing.
var jiraRequired = []struct{ name, msg string }{
	{"project", "Specify a valid project ID or key"},
	{"issuetype", "Specify an issue type"},
	{"summary", "You must specify a summary of the issue."},
}

// jiraRef is how Jira names a project ({"key": …}), an issue type or a
// priority ({"name": …}).
type jiraRef struct{ Key, Name string }

func jiraProject(is *JiraIssue, raw json.RawMessage) string {
	var ref jiraRef
	err := json.Unmarshal(raw, &ref)
	is.Project = ref.Key
	if err != nil || !jiraKeyPattern.MatchString(ref.Key) {
		return "valid project is required"
	}
	return ""
}

func jiraIssueType(is *JiraIssue, raw json.RawMessage) string {
	var ref jiraRef
	err := json.Unmarshal(raw, &ref)
	is.IssueType = ref.Name
	if err != nil || strings.TrimSpace(ref.Name) == "" {
		return "valid issue type is required"
	}
	return ""
}

func jiraPriority(is *JiraIssue, raw json.RawMessage) string {
	var ref jiraRef
	err := json.Unmarshal(raw, &ref)
	is.Priority = ref.Name
	if err != nil || !slices.Contains(jiraPriorities, ref.Name) {
		return "The priority selected is invalid."
	}
	return ""
}

func jiraSummary(is *JiraIssue, raw json.RawMessage) string {
	switch err := json.Unmarshal(raw, &is.Summary); {
	case err != nil:
		return "Operation value must be a string"
	case strings.ContainsAny(is.Summary, "\r\n"):
		return "The summary is invalid because it contains newline characters."
	case len([]rune(is.Summary)) > 255:
		return "Summary must be less than 255 characters."
	}
	return ""
}

func jiraDescription(is *JiraIssue, raw json.RawMessage) string {
	text, ok := adfText(raw)
	is.Description = text
	if !ok {
		return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
	}
	return ""
}

// jiraLabels reports the last bad label only.
func jiraLabels(is *JiraIssue, raw json.RawMessage) string {
	var msg string
	if json.Unmarshal(raw, &is.Labels) != nil {
		msg = "Operation value must be an array of strings"
	}
	for _, l := range is.Labels {
		switch {
		case l == "" || strings.ContainsFunc(l, unicode.IsSpace):
			msg = fmt.Sprintf("The label '%s' contains spaces which is invalid.", l)
		case len([]rune(l)) > 255:
			msg = "The label must not exceed 255 characters."
		}
	}
	return msg
}

func (j *Jira) comment(w http.ResponseWriter, r *http.Request, idOrKey string) {
	var req struct {
		Body json.RawMessage `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		jiraError(w, http.StatusBadRequest, []string{"Invalid request payload. Refer to the REST API documentation and try again."}, nil)
		return
	}
	text, ok := adfText(req.Body)
	if !ok || text == "" {
		jiraError(w, http.StatusBadRequest, []string{}, map[string]string{"comment": "Comment body can not be empty!"})
		return
	}
	j.mu.Lock()
	var is *JiraIssue
	for _, c := range j.issues {
		if c.Key == idOrKey || c.ID == idOrKey {
			is = c
		}
	}
	if is == nil {
		j.mu.Unlock()
		jiraError(w, http.StatusNotFound, []string{"Issue does not exist or you do not have permission to see it."}, nil)
		return
	}
	is.Comments = append(is.Comments, text)
	id := strconv.Itoa(j.nextID)
	j.nextID++
	j.mu.Unlock()
	jiraWrite(w, http.StatusCreated, map[string]string{"id": id, "self": jiraSelf(r, is.ID) + "/comment/" + id})
}

func (j *Jira) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m := jiraLabelJQL.FindStringSubmatch(q.Get("jql"))
	if m == nil {
		jiraError(w, http.StatusBadRequest, []string{`The fake understands only JQL of the form labels = "name".`}, nil)
		return
	}
	limit := 50
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			jiraError(w, http.StatusBadRequest, []string{"maxResults must be a non-negative number."}, nil)
			return
		}
		limit = n
	}
	type hit struct {
		ID   string `json:"id"`
		Key  string `json:"key"`
		Self string `json:"self"`
	}
	hits := []hit{}
	j.mu.Lock()
	for _, is := range j.issues {
		if len(hits) < limit && slices.Contains(is.Labels, m[1]) {
			hits = append(hits, hit{is.ID, is.Key, jiraSelf(r, is.ID)})
		}
	}
	j.mu.Unlock()
	jiraWrite(w, http.StatusOK, map[string]any{"issues": hits, "isLast": true})
}

// adfText renders an ADF document as plain text, reporting whether raw is
// a document the fake accepts.
func adfText(raw json.RawMessage) (string, bool) {
	type node struct {
		Type    string            `json:"type"`
		Version int               `json:"version"`
		Text    *string           `json:"text"`
		Content []json.RawMessage `json:"content"`
		Marks   []json.RawMessage `json:"marks"`
		Attrs   json.RawMessage   `json:"attrs"`
	}
	var doc node
	if json.Unmarshal(raw, &doc) != nil || doc.Type != "doc" || doc.Version != 1 {
		return "", false
	}
	var paras []string
	for _, rawPara := range doc.Content {
		var p node
		if json.Unmarshal(rawPara, &p) != nil || p.Type != "paragraph" {
			return "", false
		}
		var b strings.Builder
		for _, rawInline := range p.Content {
			var in node
			if json.Unmarshal(rawInline, &in) != nil {
				return "", false
			}
			switch {
			case in.Type == "text" && in.Text != nil && *in.Text != "":
				b.WriteString(*in.Text)
			case in.Type == "hardBreak":
				b.WriteByte('\n')
			default: // includes empty text nodes, which Jira refuses
				return "", false
			}
		}
		paras = append(paras, b.String())
	}
	return strings.Join(paras, "\n\n"), true
}

func jiraMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method != method {
		w.Header().Set("Allow", method)
		jiraError(w, http.StatusMethodNotAllowed, []string{"Method " + r.Method + " not allowed."}, nil)
		return false
	}
	return true
}

func jiraJSON(w http.ResponseWriter, r *http.Request) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		jiraError(w, http.StatusUnsupportedMediaType, []string{"Unsupported Media Type"}, nil)
		return false
	}
	return true
}

func jiraSelf(r *http.Request, id string) string {
	return "http://" + r.Host + "/rest/api/3/issue/" + id
}

func jiraError(w http.ResponseWriter, code int, messages []string, errs map[string]string) {
	if messages == nil {
		messages = []string{}
	}
	if errs == nil {
		errs = map[string]string{}
	}
	jiraWrite(w, code, map[string]any{"errorMessages": messages, "errors": errs})
}

func jiraWrite(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
