// Package admin is hookroute's admin API: bearer tokens with scopes,
// events and deliveries, replays, sinks, reload, outbound signing keys,
// trial runs, /metrics and the console's files. It talks to the engine
// through Engine alone, so that what an operator may do is one list.
package admin

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hookroute/hookroute/router/trial"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookroute/hookroute/internal/httpjson"
	"github.com/hookroute/hookroute/internal/lograte"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/ui"
)

// The admin API (README: Operating). Every /api route needs a bearer token with
// the route's scope: 401 without a valid token, 403 without the scope.
// /metrics needs the read scope when tokens are configured, and is open
// (on the loopback admin listener) when none are.

// Handler serves /metrics and the admin API on the admin listener, over
// the engine e.
func Handler(e Engine, g prometheus.Gatherer) http.Handler {
	r := &server{e: e, store: e.Store(), log: e.Logger(), logs: lograte.NewDefault()}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.metricsAuth(promhttp.HandlerFor(g, promhttp.HandlerOpts{})))
	api := func(pattern, scope string, h http.HandlerFunc) { mux.Handle(pattern, r.requireScope(scope, h)) }
	api("GET /api/events", "read", r.apiListEvents)
	api("GET /api/events/{id}", "read", r.apiGetEvent)
	api("GET /api/deliveries", "read", r.apiListDeliveries)
	api("GET /api/deliveries/{id}", "read", r.apiGetDelivery)
	api("POST /api/deliveries/{id}/replay", "replay", r.apiReplayOne)
	api("POST /api/deliveries/replay", "replay", r.apiReplayBulk)
	api("GET /api/sinks", "read", r.apiListSinks)
	api("POST /api/sinks/{name}/resume", "replay", r.apiResumeSink)
	api("POST /api/reload", "reload", r.apiReload)
	r.registerKeyRoutes(api)
	r.registerTrialRoutes(api)
	r.registerSilenceRoutes(api)
	r.registerTimerRoutes(api)
	mux.Handle("GET /ui/", ui.Handler())
	mux.HandleFunc("/api/", func(w http.ResponseWriter, req *http.Request) {
		httpjson.Error(w, http.StatusNotFound, "no such API route")
	})
	return mux
}

type tokenKey struct{}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// tokenName returns the name of the admin token that authorised req.
func tokenName(req *http.Request) string {
	n, _ := req.Context().Value(tokenKey{}).(string)
	return n
}

func (r *server) metricsAuth(h http.Handler) http.Handler {
	auth := r.requireScope("read", h)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if len(r.e.Runtime().Config.Admin.Tokens) == 0 {
			h.ServeHTTP(w, req)
			return
		}
		auth.ServeHTTP(w, req)
	})
}

// requireScope admits requests whose bearer token is configured and holds
// scope. Tokens are compared in constant time, each of them, so timing says
// nothing about which one nearly matched.
func (r *server) requireScope(scope string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tokens := r.e.Runtime().Config.Admin.Tokens
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		var match *config.TokenConfig
		if ok && got != "" {
			for i := range tokens {
				if constantTimeEqual(got, tokens[i].Token.Reveal()) {
					match = &tokens[i]
				}
			}
		}
		switch {
		case match == nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookroute"`)
			httpjson.Error(w, http.StatusUnauthorized, "unauthorized")
		case !slices.Contains(match.Scopes, scope):
			httpjson.Error(w, http.StatusForbidden, "this token lacks the "+scope+" scope")
		default:
			h.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), tokenKey{}, match.Name)))
		}
	})
}

// eventJSON is an event as the API shows it.
type eventJSON struct {
	Source      string            `json:"source"`
	ID          string            `json:"id"`
	Event       string            `json:"event"`
	ReceivedAt  time.Time         `json:"received_at"`
	Quarantined bool              `json:"quarantined"`
	Matched     []string          `json:"matched"`
	Headers     map[string]string `json:"headers,omitempty"`
	Payload     json.RawMessage   `json:"payload,omitempty"`
	Deliveries  []*deliveryJSON   `json:"deliveries,omitempty"`
}

func toEventJSON(e *router.EventRecord) *eventJSON {
	j := &eventJSON{Source: e.Source, ID: e.ID, Event: e.Name, ReceivedAt: e.ReceivedAt.UTC(), Quarantined: e.Quarantined, Matched: e.Matched}
	if j.Matched == nil {
		j.Matched = []string{}
	}
	return j
}

// deliveryJSON is a delivery as the API shows it.
type deliveryJSON struct {
	ID            string        `json:"id"`
	Source        string        `json:"source"`
	EventID       string        `json:"event_id"`
	Rule          string        `json:"rule"`
	Route         int           `json:"route"`
	Sink          string        `json:"sink"`
	Status        string        `json:"status"`
	InFlight      bool          `json:"in_flight"`
	Attempts      int           `json:"attempts"`
	NextAttemptAt *time.Time    `json:"next_attempt_at,omitempty"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
	LastError     string        `json:"last_error,omitempty"`
	RemoteID      string        `json:"remote_id,omitempty"`
	Replays       int           `json:"replays,omitempty"`
	ReplayedBy    string        `json:"replayed_by,omitempty"`
	ReplayedAt    *time.Time    `json:"replayed_at,omitempty"`
	AttemptLog    []attemptJSON `json:"attempt_log,omitempty"`
}

type attemptJSON struct {
	At         time.Time `json:"at"`
	DurationMS float64   `json:"duration_ms"`
	Outcome    string    `json:"outcome"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	RemoteID   string    `json:"remote_id,omitempty"`
}

func toDeliveryJSON(d *router.DeliveryRecord) *deliveryJSON {
	j := &deliveryJSON{
		ID: d.ID, Source: d.Source, EventID: d.EventID, Rule: d.Rule, Route: d.Route, Sink: d.Sink,
		Status: d.Status, InFlight: d.Leased, Attempts: d.Attempts, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		LastError: d.LastError, RemoteID: d.RemoteID, Replays: d.Replays, ReplayedBy: d.ReplayedBy,
	}
	if d.Status == router.StatusPending || d.Status == router.StatusWaiting {
		// A waiting delivery's is when its timer fires.
		t := d.NextAttemptAt.UTC()
		j.NextAttemptAt = &t
	}
	if !d.ReplayedAt.IsZero() {
		t := d.ReplayedAt.UTC()
		j.ReplayedAt = &t
	}
	for _, a := range d.AttemptLog {
		j.AttemptLog = append(j.AttemptLog, attemptJSON{
			At: a.At.UTC(), DurationMS: float64(a.Duration.Microseconds()) / 1000, Outcome: a.Outcome,
			StatusCode: a.StatusCode, Error: a.Error, RemoteID: a.RemoteID,
		})
	}
	return j
}

// listReply is a page of a listing; NextCursor is empty on the last page.
type listReply[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func encodeCursor(c router.Cursor) string {
	b, _ := json.Marshal(struct {
		T int64  `json:"t"`
		S string `json:"s,omitempty"`
		I string `json:"i"`
	}{c.At.UnixNano(), c.Source, c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*router.Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var v struct {
		T int64  `json:"t"`
		S string `json:"s"`
		I string `json:"i"`
	}
	if err != nil || json.Unmarshal(b, &v) != nil || v.I == "" {
		return nil, errors.New("invalid cursor")
	}
	return &router.Cursor{At: time.Unix(0, v.T).UTC(), Source: v.S, ID: v.I}, nil
}

// queryParams reads the common listing parameters.
type queryParams struct {
	since, until time.Time
	after        *router.Cursor
	limit        int
}

// maxPage bounds one page of a listing.
const maxPage = 1000

func (r *server) parseListQuery(req *http.Request) (queryParams, error) {
	q := req.URL.Query()
	var p queryParams
	var err error
	if p.since, err = parseTimeParam(q.Get("since"), r.now()); err != nil {
		return p, fmt.Errorf("since: %w", err)
	}
	if p.until, err = parseTimeParam(q.Get("until"), r.now()); err != nil {
		return p, fmt.Errorf("until: %w", err)
	}
	if p.after, err = decodeCursor(q.Get("cursor")); err != nil {
		return p, err
	}
	p.limit = 100
	if l := q.Get("limit"); l != "" {
		if p.limit, err = strconv.Atoi(l); err != nil || p.limit < 1 || p.limit > maxPage {
			return p, fmt.Errorf("limit: want 1 to %d", maxPage)
		}
	}
	return p, nil
}

// parseTimeParam accepts RFC 3339 or a duration back from now ("24h",
// "7d").
func parseTimeParam(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time or a duration such as 24h or 7d")
	}
	return now.Add(-d), nil
}

func (r *server) apiListEvents(w http.ResponseWriter, req *http.Request) {
	p, err := r.parseListQuery(req)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	q := req.URL.Query()
	evs, err := r.store.ListEvents(req.Context(), router.EventFilter{Source: q.Get("source"), Name: q.Get("event"), Since: p.since, Until: p.until, After: p.after, Limit: p.limit})
	if err != nil {
		r.storeError(w, err)
		return
	}
	out := listReply[*eventJSON]{Items: make([]*eventJSON, 0, len(evs))}
	for _, e := range evs {
		out.Items = append(out.Items, toEventJSON(e))
	}
	if len(evs) == p.limit {
		last := evs[len(evs)-1]
		out.NextCursor = encodeCursor(router.Cursor{At: last.ReceivedAt, Source: last.Source, ID: last.ID})
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (r *server) apiGetEvent(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	source := req.URL.Query().Get("source")
	var ev *router.EventRecord
	var err error
	if source != "" {
		ev, err = r.store.GetEvent(req.Context(), source, id)
	} else {
		ev, err = r.findEvent(req.Context(), id)
	}
	if err != nil {
		r.storeError(w, err)
		return
	}
	j := toEventJSON(ev)
	// Filtered again: an event stored before a header joined the drop
	// list still has it.
	rt := r.e.Runtime()
	j.Headers = make(map[string]string, len(ev.Headers))
	for k, v := range ev.Headers {
		if !rt.DropsHeader(k) {
			j.Headers[k] = v
		}
	}
	if json.Valid(ev.Body) {
		j.Payload = ev.Body
	}
	ds, err := r.store.ListDeliveries(req.Context(), router.DeliveryFilter{Source: ev.Source, EventID: ev.ID, Limit: maxPage})
	if err != nil {
		r.storeError(w, err)
		return
	}
	for _, d := range ds {
		j.Deliveries = append(j.Deliveries, toDeliveryJSON(d))
	}
	httpjson.Write(w, http.StatusOK, j)
}

// findEvent looks an id up in every configured source: ids are unique per
// source, and a caller who does not name one means the only one.
func (r *server) findEvent(ctx context.Context, id string) (*router.EventRecord, error) {
	for _, s := range r.e.Runtime().Sources {
		ev, err := r.store.GetEvent(ctx, s.Name, id)
		if err == nil || !errors.Is(err, router.ErrNotFound) {
			return ev, err
		}
	}
	return nil, router.ErrNotFound
}

func (r *server) deliveryFilter(req *http.Request) (router.DeliveryFilter, error) {
	p, err := r.parseListQuery(req)
	if err != nil {
		return router.DeliveryFilter{}, err
	}
	q := req.URL.Query()
	f := router.DeliveryFilter{Status: q.Get("status"), Sink: q.Get("sink"), Rule: q.Get("rule"), Source: q.Get("source"),
		EventID: q.Get("event_id"), Since: p.since, Until: p.until, After: p.after, Limit: p.limit}
	if f.Status != "" && !knownStatus(f.Status) {
		return f, errors.New("status: want pending, delivered, dead, suppressed, silenced, grouped, waiting or cancelled")
	}
	return f, nil
}

func (r *server) apiListDeliveries(w http.ResponseWriter, req *http.Request) {
	f, err := r.deliveryFilter(req)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	ds, err := r.store.ListDeliveries(req.Context(), f)
	if err != nil {
		r.storeError(w, err)
		return
	}
	out := listReply[*deliveryJSON]{Items: make([]*deliveryJSON, 0, len(ds))}
	for _, d := range ds {
		out.Items = append(out.Items, toDeliveryJSON(d))
	}
	if len(ds) == f.Limit {
		last := ds[len(ds)-1]
		out.NextCursor = encodeCursor(router.Cursor{At: last.CreatedAt, ID: last.ID})
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (r *server) apiGetDelivery(w http.ResponseWriter, req *http.Request) {
	d, err := r.store.GetDelivery(req.Context(), req.PathValue("id"))
	if err != nil {
		r.storeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, toDeliveryJSON(d))
}

func (r *server) apiReplayOne(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if err := r.store.Replay(req.Context(), id, tokenName(req), r.now()); err != nil {
		r.storeError(w, err)
		return
	}
	r.log.Info("delivery replayed", "delivery_id", id, "by", tokenName(req))
	r.e.Replayed(1)
	d, err := r.store.GetDelivery(req.Context(), id)
	if err != nil {
		r.storeError(w, err)
		return
	}
	r.e.Wake(d.Sink)
	httpjson.Write(w, http.StatusOK, toDeliveryJSON(d))
}

// bulkReplay is the body of POST /api/deliveries/replay.
type bulkReplay struct {
	Status string `json:"status"` // default dead
	Sink   string `json:"sink"`
	Rule   string `json:"rule"`
	Source string `json:"source"`
	Since  string `json:"since"`
	Until  string `json:"until"`
	// Max bounds how many are replayed by one call (default and at most
	// 10,000).
	Max int `json:"max"`
	// Rate is how many replayed deliveries fall due per second (default
	// 20): they are spread out so that live traffic is not starved.
	Rate float64 `json:"rate"`
	// DryRun counts what would be replayed.
	DryRun bool `json:"dry_run"`
}

const maxBulkReplay = 10000

func (r *server) apiReplayBulk(w http.ResponseWriter, req *http.Request) {
	var b bulkReplay
	dec := json.NewDecoder(io.LimitReader(req.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil && !errors.Is(err, io.EOF) {
		httpjson.Error(w, http.StatusBadRequest, "invalid body: "+err.Error())
		return
	}
	if b.Status == "" {
		b.Status = router.StatusDead
	}
	if b.Max <= 0 || b.Max > maxBulkReplay {
		b.Max = maxBulkReplay
	}
	if b.Rate <= 0 {
		b.Rate = 20
	}
	now := r.now()
	f := router.DeliveryFilter{Status: b.Status, Sink: b.Sink, Rule: b.Rule, Source: b.Source, Limit: maxPage}
	var err error
	if f.Since, err = parseTimeParam(b.Since, now); err != nil {
		httpjson.Error(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	if f.Until, err = parseTimeParam(b.Until, now); err != nil {
		httpjson.Error(w, http.StatusBadRequest, "until: "+err.Error())
		return
	}
	if !knownStatus(f.Status) {
		httpjson.Error(w, http.StatusBadRequest, "status: want dead, delivered, pending, suppressed, silenced, grouped, waiting or cancelled")
		return
	}
	res, err := r.e.ReplayMatching(req.Context(), f, b.Max, b.Rate, tokenName(req), b.DryRun)
	if err != nil {
		r.storeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

// storeError answers a store failure: 404 for unknown ids, 409 for busy,
// 503 otherwise (the error itself is logged, not shown).
func (r *server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, router.ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, "not found")
	case errors.Is(err, router.ErrBusy):
		httpjson.Error(w, http.StatusConflict, "the delivery is in flight; try again when its attempt ends")
	default:
		r.logs.Log(r.log, r.now(), slog.LevelError, "admin-store", "admin: store", "err", err)
		httpjson.Error(w, http.StatusServiceUnavailable, "store unavailable")
	}
}

// Engine is what the admin API asks of the router (dispatch.Router).
type Engine interface {
	// Runtime is the running config.
	Runtime() *rules.Runtime
	// Store is where events, deliveries and keys are read and replayed.
	Store() router.Store
	Now() time.Time
	Logger() *slog.Logger
	// Reload loads the config again, as SIGHUP does.
	Reload() error
	// ResumeSink resumes a paused sink and sends its backlog at once.
	ResumeSink(sink, reason string) error
	// Wake tells the sink's workers that deliveries may be due.
	Wake(sink string)
	// Replayed counts replays for the metrics.
	Replayed(n int)
	// ReplayMatching replays, at most max, the deliveries f matches.
	ReplayMatching(ctx context.Context, f router.DeliveryFilter, max int, rate float64, by string, dryRun bool) (dispatch.ReplayResult, error)
	// CanSeal reports whether signing keys can be kept (a master key is
	// set); SealSigningKey encrypts a new one at rest, and
	// SigningKeysChanged makes the workers read a sink's keys again.
	CanSeal() bool
	SealSigningKey(sink, keyID string, priv *rsa.PrivateKey) ([]byte, error)
	SigningKeysChanged(sink string)
	// Trial runs an event through the rules without storing it.
	Trial(ctx context.Context, in trial.Input) (*trial.Result, error)
	// CreateSilence checks and records a silence made by by;
	// ExpireSilence ends one now. Both apply on this replica at once.
	CreateSilence(ctx context.Context, in dispatch.SilenceInput, by string) (*router.Silence, error)
	ExpireSilence(ctx context.Context, id, by string) error
	// TrialSamples lists the events a trial may start from.
	TrialSamples(ctx context.Context) []trial.Sample
}

// server serves the admin API over one engine.
type server struct {
	e     Engine
	store router.Store
	log   *slog.Logger
	logs  *lograte.Limiter // for failures that repeat per request
}

func (r *server) now() time.Time { return r.e.Now() }

// knownStatus reports whether s is a delivery status.
func knownStatus(s string) bool {
	switch s {
	case router.StatusPending, router.StatusDelivered, router.StatusDead, router.StatusSuppressed, router.StatusSilenced, router.StatusGrouped, router.StatusWaiting, router.StatusCancelled:
		return true
	}
	return false
}
