package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookroute/hookroute/internal/httpjson"
	"github.com/hookroute/hookroute/internal/lograte"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/source"
)

// DeliveryID is the id of the delivery of (event, rule, route), made when
// the event is stored and kept across retries and replays, so it can serve
// as the idempotency key.
//
// Its first 6 bytes are receivedAt in Unix milliseconds, the other 9 a hash
// of the rest; base32hex keeps the byte order, so ids sort by time. A
// random id put every insert (of the delivery, and later of each attempt,
// keyed by it) on a random page of its index, and a commit writes every
// page it touched to the WAL: time-ordered ids made the router's ingest 8 %
// and its deliveries 11 % cheaper. Replicas of one event never both store
// deliveries (its id is stored once), so the id need not be the same on
// every replica, only unique: 72 bits of hash within one millisecond.
func DeliveryID(receivedAt time.Time, source, eventID, rule string, route int) string {
	h := sha256.New()
	for _, p := range []string{source, eventID, rule, strconv.Itoa(route)} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var b [15]byte
	ms := uint64(max(receivedAt.UnixMilli(), 0))
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	copy(b[6:], h.Sum(nil)[:9])
	return "d_" + base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// ingestTimeout bounds how long a webhook request waits for its commit.
const ingestTimeout = 10 * time.Second

// ingestReply is the body of 200 and 202 answers.
type ingestReply struct {
	ID         string   `json:"id"`
	Matched    []string `json:"matched"`
	Deliveries int      `json:"deliveries"`
}

// serveHook handles POST/HEAD/GET on a source path.
func (r *Router) serveHook(w http.ResponseWriter, req *http.Request, rt *rules.Runtime, src *rules.Source) {
	switch req.Method {
	case http.MethodHead, http.MethodGet:
		// SalesIQ checks a URL with HEAD before it saves a webhook.
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, HEAD, GET")
		httpjson.Error(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	received := r.now()
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, int64(rt.Config.Server.MaxBody)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			r.metrics.event(src.Name, "too_large")
			httpjson.Error(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		r.metrics.event(src.Name, "bad_request")
		httpjson.Error(w, http.StatusBadRequest, "could not read body")
		return
	}
	// Verify the raw bytes before anything looks inside them.
	if err := src.Verifier.Verify(req.Header, body, received); err != nil {
		r.metrics.event(src.Name, "unauthorized")
		r.logs.Log(r.log, r.now(), slog.LevelInfo, "ingest-auth:"+src.Name, "ingest: signature rejected", "source", src.Name, "reason", err.Error(), "remote", req.RemoteAddr)
		httpjson.Error(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	// A sender's check of the endpoint (Slack's url_verification) is
	// answered here, signed but before decoding, and stored nowhere: it
	// is not an event.
	if hs, ok := src.Adapter().(source.Handshaker); ok {
		if answer, ctype, ok := hs.Handshake(body, req.Header); ok {
			r.metrics.event(src.Name, "handshake")
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(answer)
			return
		}
	}
	// Counted from here only: a client that trickles its body, signed or
	// not, costs the CPU nothing while it does, and counted it would make
	// the workers hold back deliveries for an ingest that is not busy
	// (see ingestSaturated).
	r.ingesting.Add(1)
	defer r.ingesting.Add(-1)
	in := &router.Incoming{Source: src.Name, Headers: rt.HeaderMap(req.Header), Body: body, ReceivedAt: received}
	rec, ds, reply, view, decoded := r.prepare(rt, src, in)
	// Bound the wait on the store: a sender that gets 503 retries; one left
	// hanging may give up on us.
	ctx, cancel := context.WithTimeout(req.Context(), ingestTimeout)
	defer cancel()
	// Timers the event cancels are cancelled before it is stored and
	// acknowledged: an acknowledged cancel is a durable one. Should the
	// store fail in between, the sender retries, and cancelling again
	// changes nothing.
	if err := r.cancelTimers(ctx, rt, src, decoded); err != nil {
		r.metrics.event(src.Name, "store_error")
		r.logs.Log(r.log, r.now(), slog.LevelError, "ingest-cancel:"+src.Name, "ingest: cancel timers", "source", src.Name, "err", err)
		w.Header().Set("Retry-After", "5")
		httpjson.Error(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	handed := r.offerHandoffs(rt, ds, received)
	dup, err := r.store.Ingest(ctx, rec, ds)
	if err != nil {
		handed.cancel()
		r.metrics.event(src.Name, "store_error")
		r.logs.Log(r.log, r.now(), slog.LevelError, "ingest-store:"+src.Name, "ingest: store", "source", src.Name, "err", err)
		if !errors.Is(req.Context().Err(), context.Canceled) { // not the sender hanging up
			r.noteCommit(err)
		}
		// 503 makes the sender retry; acknowledging now could lose it.
		w.Header().Set("Retry-After", "5")
		httpjson.Error(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	r.noteCommit(nil)
	status := http.StatusAccepted
	switch {
	case dup:
		handed.cancel()
		status = http.StatusOK
		reply.ID = rec.ID // the stored event's: another one if the body hash matched
		r.metrics.event(src.Name, "duplicate")
	case rec.Quarantined:
		r.metrics.event(src.Name, "quarantined")
	default:
		r.metrics.event(src.Name, "accepted")
		if view != nil {
			r.views.put(rt, rec.Source, rec.ID, view)
		}
		handed.hand(rec, ds)
		r.wakeSinks(ds)
	}
	httpjson.Write(w, status, reply)
}

// prepare decodes the event, runs the rules and builds the rows to store.
// A body that verified but does not decode is kept, quarantined, rather
// than dropped: the sender did nothing wrong by its own lights. The view
// it returns, for the view cache, is nil unless a delivery will read it:
// deliveries that get the event as JSON written from the body do not, and
// a cache full of views nobody reads is garbage the collector must trace.
//
// decoded is the event's view whatever reads it (nil for a quarantined
// body): what the timers it may cancel are looked up with.
func (r *Router) prepare(rt *rules.Runtime, src *rules.Source, in *router.Incoming) (rec *router.EventRecord, ds []router.NewDelivery, reply ingestReply, cache, decoded *router.View) {
	rec = &router.EventRecord{Source: src.Name, ReceivedAt: in.ReceivedAt, Headers: in.Headers, Body: in.Body}
	if src.Kind.SignsBodyOnly {
		sum := sha256.Sum256(in.Body)
		rec.BodyHash = sum[:]
	}
	view, err := src.Decode(in)
	if err != nil {
		rec.ID, rec.Quarantined = "q:"+source.BodyHash(in.Body), true
		r.logs.Log(r.log, r.now(), slog.LevelWarn, "ingest-quarantine:"+src.Name, "ingest: body quarantined", "source", src.Name, "event_id", rec.ID, "err", err)
		return rec, nil, ingestReply{ID: rec.ID, Matched: []string{}}, nil, nil
	}
	rec.ID, rec.Name = view.ID, view.Name
	matched := rt.Match(src.Name, view, func(rule string, err error) {
		r.logs.Log(r.log, r.now(), slog.LevelWarn, "rule-failed:"+src.Name+":"+rule, "rule failed on event; counted as not matched", "rule", rule, "source", src.Name, "event_id", view.ID, "err", err)
	})
	readsView := false
	reply = ingestReply{ID: view.ID, Matched: make([]string, 0, len(matched))}
	for _, rule := range matched {
		rec.Matched = append(rec.Matched, rule.Name)
		reply.Matched = append(reply.Matched, rule.Name)
		timer := r.timerKey(rule, src, view)
		for _, route := range rule.Routes {
			sr := rt.Sinks[route.Sink]
			if sr == nil || sr.Disabled {
				continue
			}
			readsView = readsView || !takesEventJSON(src, route, sr.Sink)
			d := router.NewDelivery{
				ID: DeliveryID(in.ReceivedAt, src.Name, view.ID, rule.Name, route.Index), Rule: rule.Name,
				Route: route.Index, Sink: route.Sink, NextAttemptAt: in.ReceivedAt,
			}
			if rule.Unless != nil {
				d.TimerKey, d.NextAttemptAt = timer, in.ReceivedAt.Add(timerDelay(rule, route))
			}
			ds = append(ds, d)
		}
	}
	reply.Deliveries = len(ds)
	cache = view
	if !readsView {
		cache = nil
	}
	return rec, ds, reply, cache, view
}

func (r *Router) wakeSinks(ds []router.NewDelivery) {
	for _, d := range ds {
		if p := r.pools.get(d.Sink); p != nil {
			p.wake()
		}
	}
}

// Router ties the running config, the store, the workers and the HTTP
// handlers together.
type Router struct {
	rt      atomicRuntime
	store   router.Store
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	owner   string // lease owner id of this process
	pools   *pools
	logs    *lograte.Limiter // for failures that repeat per request
	views   *viewCache
	states  sinkStates
	keys    *keyring // outbound signing keys (keys.go)
	// silences is the workers' copy of the silences (silences.go).
	silences silences
	// retired are rules with unless: a reload removed, by name, kept
	// for their waiting timers (timers.go ruleFor).
	retiredMu sync.Mutex
	retired   map[string]*rules.Rule

	reload     func() (*rules.Runtime, error)
	capture    func() config.Capturer
	reloadMu   sync.Mutex
	pruneEvery time.Duration

	// commit is the outcome of the latest commit, an ingest's or a
	// readiness probe's (see Ready): its time in Unix nanoseconds, the
	// lowest bit set if it failed; 0 before the first. One word, so that
	// the latest outcome wins whatever the clock's resolution. probeMu
	// lets one probe run at a time.
	commit  atomic.Int64
	probeMu sync.Mutex
	// ingesting counts verified webhook requests that are being decoded
	// and committed (see ingestSaturated).
	ingesting atomic.Int64
	// saturatedAbove is the in-flight count above which ingest counts as
	// saturated.
	saturatedAbove int64
}

// Options configure a Router.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// Owner names this process in leases; default host:pid:random.
	Owner string
	// PollInterval bounds how long an idle worker waits before it looks
	// at the store again (a fallback: inserts wake workers at once).
	PollInterval time.Duration
	// Reload loads the config again, for Router.Reload (SIGHUP and POST
	// /api/reload); nil disables reloading.
	Reload func() (*rules.Runtime, error)
	// PruneEvery is how often history past the retention is pruned;
	// default an hour, negative never.
	PruneEvery time.Duration
	// MasterKey seals the outbound signing keys at rest (main reads it
	// from HOOKROUTE_MASTER_KEY through ParseMasterKey). nil: the key API
	// answers 503 and secured sinks cannot sign, so their deliveries wait.
	MasterKey []byte
	// Capture builds the capturing sinks a trial (POST /api/trial) shows
	// requests with; main passes the sinks package's. nil: trials show no
	// request.
	Capture func() config.Capturer
}

// New returns a Router for rt on store.
func New(rt *rules.Runtime, store router.Store, o Options) *Router {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Owner == "" {
		o.Owner = defaultOwner()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.PruneEvery == 0 {
		o.PruneEvery = time.Hour
	}
	r := &Router{store: store, log: o.Logger, metrics: o.Metrics, now: o.Now, owner: o.Owner,
		logs: lograte.NewDefault(), reload: o.Reload, capture: o.Capture, pruneEvery: o.PruneEvery, views: newViewCache(),
		saturatedAbove: int64(max(16, 4*runtime.GOMAXPROCS(0)))}
	r.rt.Store(rt)
	r.pools = newPools(r, o.PollInterval)
	sl, err := newSealer(o.MasterKey)
	if err != nil {
		r.log.Error("signing keys unavailable", "err", err) // never the key: newSealer's errors do not quote it
	}
	r.keys = newKeyring(store, sl)
	o.Metrics.watchStore(store, o.Now, func() []string { return slices.Sorted(maps.Keys(r.rt.Load().Sinks)) }, r.sinkPaused, r.IngestInFlight)
	return r
}

// Store returns the router's store.
func (r *Router) Store() router.Store { return r.store }

// Runtime returns the running config.
func (r *Router) Runtime() *rules.Runtime { return r.rt.Load() }

// Ready reports whether the router can take events: config loaded, and
// the store committing. A store can answer pings and still refuse commits
// (a full disk), so readiness rests on the latest commit: an ingest's, or
// else a probe's, a tiny write (Store.ProbeWrite) made when the latest
// commit is more than readyFresh old. A failed commit makes the router
// unready, so that a balancer sends webhooks to a replica that can store
// them, and the first one that succeeds after it, ingest or probe, ready
// again at once. Probing at most once per readyFresh, one at a time, keeps
// a flood of /readyz requests from becoming a flood of writes.
func (r *Router) Ready(ctx context.Context) error {
	if r.rt.Load() == nil {
		return errors.New("no config loaded")
	}
	if fresh, err := r.lastCommit(); fresh {
		return err
	}
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	if fresh, err := r.lastCommit(); fresh { // probed while this one waited
		return err
	}
	err := r.store.Ping(ctx)
	if err == nil {
		err = r.store.ProbeWrite(ctx)
	}
	r.noteCommit(err)
	if err != nil {
		r.logs.Log(r.log, r.now(), slog.LevelWarn, "ready-probe", "not ready: the store did not take a probe write", "err", err)
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// readyFresh is how long the latest commit, or failure to commit, answers
// for the store without a new probe.
const readyFresh = time.Second

// errNotCommitting is Ready's answer while the latest commit failed.
var errNotCommitting = errors.New("store: the latest commit failed")

// noteCommit records the outcome of a commit for Ready.
func (r *Router) noteCommit(err error) {
	v := r.now().UnixNano() &^ 1
	if err != nil {
		v |= 1
	}
	r.commit.Store(v)
}

// lastCommit reports whether the latest commit is recent enough to stand
// for the store, and what it said. A clock that stepped back makes it
// stale, not fresh for as long as the step.
func (r *Router) lastCommit() (fresh bool, err error) {
	v := r.commit.Load()
	if v&1 != 0 {
		err = errNotCommitting
	}
	age := r.now().Sub(time.Unix(0, v&^1))
	return v != 0 && age >= 0 && age < readyFresh, err
}
