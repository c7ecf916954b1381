package fakeapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServiceNow is a fake ServiceNow Table API, written from ServiceNow's
// documentation. It serves, for any table name:
//
//   - POST /api/now/table/{table}: a JSON object of field values → 201
//     {"result": {record}} and a Location header; numbers count from
//     INC0010001 (other tables: REC0010001), sys_ids are 32 hex digits;
//   - GET /api/now/table/{table}?sysparm_query=field=value[^field=value]
//     &sysparm_limit=n&sysparm_fields=a,b → 200 {"result": [records]}; the
//     query may test sys_id, number and correlation_id (anything else is
//     a 400, where a real instance might ignore it and match every row);
//   - GET, PATCH or PUT /api/now/table/{table}/{sys_id}: PATCH and PUT
//     append work_notes and comments to the record's journals and set the
//     other fields given → 200 {"result": {record}}.
//
// It checks the Authorization header (HTTP Basic username:password, or a
// Bearer token given to AcceptBearer) and answers 401 otherwise, and
// answers 406 to an Accept that excludes JSON. Errors have ServiceNow's
// shape, {"error": {"message", "detail"}, "status": "failure"}. Like an
// instance, it ignores fields it does not know. Safe for concurrent use.
type ServiceNow struct {
	basic string

	mu        sync.Mutex
	bearer    string
	records   []*ServiceNowRecord
	serial    int
	failN     int
	failCode  int
	failAfter string
	delay     time.Duration
	requests  []string
}

// ServiceNowRecord is a record as the fake stores it. WorkNotes and
// Comments hold each journal entry added, oldest first.
type ServiceNowRecord struct {
	Table, SysID, Number                       string
	ShortDescription, Description              string
	Urgency, Impact, CallerID, AssignmentGroup string
	CorrelationID                              string
	WorkNotes, Comments                        []string
}

// NewServiceNow returns a fake that accepts HTTP Basic with username and
// password.
func NewServiceNow(username, password string) *ServiceNow {
	return &ServiceNow{basic: "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))}
}

// AcceptBearer makes the fake also accept "Authorization: Bearer token".
func (s *ServiceNow) AcceptBearer(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bearer = token
}

// Fail makes the next n requests answer status, with Retry-After when
// retryAfter is not empty. Nothing is created by a failed request.
func (s *ServiceNow) Fail(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode, s.failAfter = n, status, retryAfter
}

// DelayNextCreate makes the next successful create store its record and
// then hold the answer back for d, or until the client gives up: a client
// whose timeout is shorter sees a failure although the record exists.
func (s *ServiceNow) DelayNextCreate(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Records returns copies of the records created, oldest first.
func (s *ServiceNow) Records() []ServiceNowRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ServiceNowRecord, len(s.records))
	for i, r := range s.records {
		out[i] = *r
		out[i].WorkNotes = slices.Clone(r.WorkNotes)
		out[i].Comments = slices.Clone(r.Comments)
	}
	return out
}

// Requests lists the requests received, as "METHOD /path", oldest first.
func (s *ServiceNow) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

var (
	snowTablePath = regexp.MustCompile(`^/api/now/(?:v1/)?table/([^/]+)(?:/([^/]+))?$`)
	snowTableName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// ServeHTTP implements http.Handler.
func (s *ServiceNow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.admit(w, r) {
		return
	}
	m := snowTablePath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		snowError(w, http.StatusBadRequest, "Requested URI does not represent any resource", r.URL.Path)
		return
	}
	table, id := m[1], m[2]
	if !snowTableName.MatchString(table) {
		snowError(w, http.StatusBadRequest, "Invalid table "+table, "")
		return
	}
	s.route(w, r, table, id)
}

// admit records the request, and answers it when a scripted failure is
// due, its credentials are wrong or it wants something other than JSON.
// It reports whether the request goes on.
func (s *ServiceNow) admit(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	if s.failN > 0 {
		s.failN--
		code, after := s.failCode, s.failAfter
		s.mu.Unlock()
		snowScriptedFailure(w, code, after)
		return false
	}
	auth := r.Header.Get("Authorization")
	authorized := auth == s.basic || s.bearer != "" && auth == "Bearer "+s.bearer
	s.mu.Unlock()
	if !authorized {
		snowError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
		return false
	}
	if a := r.Header.Get("Accept"); a != "" && !strings.Contains(a, "json") && !strings.Contains(a, "*/*") {
		snowError(w, http.StatusNotAcceptable, "Not Acceptable", "The fake answers application/json only")
		return false
	}
	return true
}

// snowScriptedFailure answers as a failing instance does, with the rate
// limit headers of a 429.
func snowScriptedFailure(w http.ResponseWriter, code int, after string) {
	if after != "" {
		w.Header().Set("Retry-After", after)
	}
	if code == http.StatusTooManyRequests {
		w.Header().Set("X-RateLimit-Limit", "100")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10))
	}
	snowError(w, code, http.StatusText(code), "Scripted failure")
}

// route hands a request on a table (id empty) or on one of its records to
// its method's handler.
func (s *ServiceNow) route(w http.ResponseWriter, r *http.Request, table, id string) {
	switch {
	case id == "" && r.Method == http.MethodPost:
		if snowJSON(w, r) {
			s.create(w, r, table)
		}
	case id == "" && r.Method == http.MethodGet:
		s.list(w, r, table)
	case id != "" && r.Method == http.MethodGet:
		s.get(w, r, table, id)
	case id != "" && (r.Method == http.MethodPatch || r.Method == http.MethodPut):
		if snowJSON(w, r) {
			s.update(w, r, table, id)
		}
	default:
		snowError(w, http.StatusMethodNotAllowed, "Method not Supported", r.Method+" is not supported here")
	}
}

func (s *ServiceNow) create(w http.ResponseWriter, r *http.Request, table string) {
	fields, ok := snowFields(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.serial++
	sum := sha256.Sum256([]byte("sys_id " + strconv.Itoa(s.serial)))
	prefix := "REC"
	if table == "incident" {
		prefix = "INC"
	}
	rec := &ServiceNowRecord{Table: table, SysID: hex.EncodeToString(sum[:16]), Number: fmt.Sprintf("%s%07d", prefix, 10000+s.serial)}
	rec.set(fields)
	s.records = append(s.records, rec)
	view := rec.view()
	delay := s.delay
	s.delay = 0
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	w.Header().Set("Location", "http://"+r.Host+"/api/now/table/"+table+"/"+rec.SysID)
	snowWrite(w, http.StatusCreated, map[string]any{"result": view})
}

func (s *ServiceNow) list(w http.ResponseWriter, r *http.Request, table string) {
	lq, ok := parseSnowList(w, r.URL.Query())
	if !ok {
		return
	}
	out := []map[string]string{}
	s.mu.Lock()
	for _, rec := range s.records {
		view := rec.view()
		if rec.Table != table || len(out) >= lq.limit || slices.ContainsFunc(lq.conds, func(c [2]string) bool { return view[c[0]] != c[1] }) {
			continue
		}
		out = append(out, lq.trim(view))
	}
	s.mu.Unlock()
	snowWrite(w, http.StatusOK, map[string]any{"result": out})
}

// snowListQuery is what a list asks for: the records that meet every
// condition (field, value), at most limit of them, with only the fields
// keep names (all when keep is nil).
type snowListQuery struct {
	conds [][2]string
	limit int
	keep  []string
}

// parseSnowList reads a list's sysparm_ parameters, or answers 400.
func parseSnowList(w http.ResponseWriter, q url.Values) (snowListQuery, bool) {
	lq := snowListQuery{limit: 10000}
	if query := q.Get("sysparm_query"); query != "" {
		for _, c := range strings.Split(query, "^") {
			field, value, ok := strings.Cut(c, "=")
			if !ok || !slices.Contains([]string{"sys_id", "number", "correlation_id"}, field) {
				snowError(w, http.StatusBadRequest, "Unsupported query", "The fake understands field=value on sys_id, number and correlation_id, joined by ^")
				return lq, false
			}
			lq.conds = append(lq.conds, [2]string{field, value})
		}
	}
	if v := q.Get("sysparm_limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			snowError(w, http.StatusBadRequest, "Invalid sysparm_limit", v)
			return lq, false
		}
		lq.limit = n
	}
	if v := q.Get("sysparm_fields"); v != "" {
		lq.keep = strings.Split(v, ",")
	}
	return lq, true
}

// trim keeps the fields of view that the query asks for.
func (lq snowListQuery) trim(view map[string]string) map[string]string {
	if lq.keep == nil {
		return view
	}
	trimmed := map[string]string{}
	for _, k := range lq.keep {
		if v, ok := view[strings.TrimSpace(k)]; ok {
			trimmed[strings.TrimSpace(k)] = v
		}
	}
	return trimmed
}

// find returns the record, or answers 404. Callers hold s.mu.
func (s *ServiceNow) find(w http.ResponseWriter, table, id string) *ServiceNowRecord {
	for _, rec := range s.records {
		if rec.Table == table && rec.SysID == id {
			return rec
		}
	}
	snowError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
	return nil
}

func (s *ServiceNow) get(w http.ResponseWriter, _ *http.Request, table, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.find(w, table, id); rec != nil {
		snowWrite(w, http.StatusOK, map[string]any{"result": rec.view()})
	}
}

func (s *ServiceNow) update(w http.ResponseWriter, r *http.Request, table, id string) {
	fields, ok := snowFields(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.find(w, table, id); rec != nil {
		rec.set(fields)
		snowWrite(w, http.StatusOK, map[string]any{"result": rec.view()})
	}
}

// set applies field values, appending journal fields.
func (rec *ServiceNowRecord) set(f map[string]string) {
	for name, to := range map[string]*string{
		"short_description": &rec.ShortDescription, "description": &rec.Description,
		"urgency": &rec.Urgency, "impact": &rec.Impact, "caller_id": &rec.CallerID,
		"assignment_group": &rec.AssignmentGroup, "correlation_id": &rec.CorrelationID,
	} {
		if v, ok := f[name]; ok {
			*to = v
		}
	}
	if v := f["work_notes"]; v != "" {
		rec.WorkNotes = append(rec.WorkNotes, v)
	}
	if v := f["comments"]; v != "" {
		rec.Comments = append(rec.Comments, v)
	}
}

// view is the record as the API shows it (journal fields read empty, as
// they do on an instance).
func (rec *ServiceNowRecord) view() map[string]string {
	return map[string]string{
		"sys_id": rec.SysID, "number": rec.Number, "short_description": rec.ShortDescription,
		"description": rec.Description, "urgency": rec.Urgency, "impact": rec.Impact,
		"caller_id": rec.CallerID, "assignment_group": rec.AssignmentGroup,
		"correlation_id": rec.CorrelationID, "work_notes": "", "comments": "",
	}
}

// snowFields reads a JSON object of field values; numbers and booleans
// are taken as their text, as an instance does.
func snowFields(w http.ResponseWriter, r *http.Request) (map[string]string, bool) {
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil || raw == nil {
		snowError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
		return nil, false
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			out[k] = v
		case float64, bool:
			out[k] = fmt.Sprint(v)
		case nil:
			out[k] = ""
		default:
			snowError(w, http.StatusBadRequest, "Exception while reading request", "Field "+k+" must be a string")
			return nil, false
		}
	}
	return out, true
}

func snowJSON(w http.ResponseWriter, r *http.Request) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		snowError(w, http.StatusUnsupportedMediaType, "Unsupported Media Type", "Send application/json")
		return false
	}
	return true
}

func snowError(w http.ResponseWriter, code int, message, detail string) {
	snowWrite(w, code, map[string]any{"error": map[string]string{"message": message, "detail": detail}, "status": "failure"})
}

func snowWrite(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
