package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/hookroute/hookroute/internal/httpjson"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// registerTimerRoutes adds the timer API: reading needs read; cancelling
// needs replay, the scope that already decides what is sent (a cancelled
// timer's deliveries are never sent).
func (r *server) registerTimerRoutes(api func(pattern, scope string, h http.HandlerFunc)) {
	api("GET /api/timers", "read", r.apiListTimers)
	api("DELETE /api/timers/{id}", "replay", r.apiCancelTimer)
}

// timerJSON is a waiting timer as the API shows it.
type timerJSON struct {
	ID   string `json:"id"`
	Rule string `json:"rule"`
	// Values are the first event's values of the rule's unless.same, as
	// JSON, in order: what a later event must have to cancel the timer.
	Values []json.RawMessage `json:"values"`
	// Same pairs Values with the expressions of the running config's
	// unless.same; absent when the rule is gone or its same: changed
	// length since the timer started (the values are then all there is).
	Same []timerSameJSON `json:"same,omitempty"`
	// Uncancellable marks a timer whose first event's same: values could
	// not be computed: no event can cancel it, only an operator.
	Uncancellable bool                `json:"uncancellable,omitempty"`
	TimerKey      string              `json:"timer_key"`
	Source        string              `json:"source"`
	EventID       string              `json:"event_id"`
	Event         string              `json:"event"`
	StartedAt     time.Time           `json:"started_at"`
	DueAt         time.Time           `json:"due_at"`
	Deliveries    []timerDeliveryJSON `json:"deliveries"`
	// Cancelled is, in a DELETE's answer, how many deliveries it
	// cancelled (some may have fired since the timer was listed).
	Cancelled int `json:"cancelled,omitempty"`
}

type timerSameJSON struct {
	Expr  string          `json:"expr"`
	Value json.RawMessage `json:"value"`
}

type timerDeliveryJSON struct {
	ID    string    `json:"id"`
	Sink  string    `json:"sink"`
	DueAt time.Time `json:"due_at"`
}

// toTimerJSON shows t, reading the rule's same: expressions from rt.
func toTimerJSON(t *router.Timer, rt *rules.Runtime) *timerJSON {
	j := &timerJSON{ID: t.ID, Rule: t.Rule, Values: []json.RawMessage{}, TimerKey: t.Key, Source: t.Source, EventID: t.EventID,
		Event: t.EventName, StartedAt: t.StartedAt.UTC(), DueAt: t.Due.UTC(), Deliveries: make([]timerDeliveryJSON, 0, len(t.Deliveries))}
	for _, d := range t.Deliveries {
		j.Deliveries = append(j.Deliveries, timerDeliveryJSON{ID: d.ID, Sink: d.Sink, DueAt: d.Due.UTC()})
	}
	// The key is JSON ["rule", same values…] (rules.Unless.Key). A key
	// that does not decode shows no values; TimerKey still shows it.
	var key []json.RawMessage
	if json.Unmarshal([]byte(t.Key), &key) != nil || len(key) == 0 {
		return j
	}
	j.Values = key[1:]
	// dispatch.timerKey's stand-in for a same: that failed on the first
	// event: one value, {"uncancellable": the event id}, which no same:
	// value can be.
	var only struct {
		Uncancellable string `json:"uncancellable"`
	}
	if len(j.Values) == 1 && json.Unmarshal(j.Values[0], &only) == nil && only.Uncancellable == t.EventID {
		j.Uncancellable = true
		return j
	}
	if rule, ok := rt.Rule(t.Rule); ok && rule.Unless != nil && len(rule.Unless.Same) == len(j.Values) {
		for i, expr := range rule.Unless.Same {
			j.Same = append(j.Same, timerSameJSON{Expr: expr, Value: j.Values[i]})
		}
	}
	return j
}

// apiListTimers lists the waiting timers, earliest due first.
func (r *server) apiListTimers(w http.ResponseWriter, req *http.Request) {
	ts, err := r.store.Timers(req.Context())
	if err != nil {
		r.storeError(w, err)
		return
	}
	rt := r.e.Runtime()
	items := make([]*timerJSON, 0, len(ts))
	for i := range ts {
		items = append(items, toTimerJSON(&ts[i], rt))
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"items": items})
}

// apiCancelTimer cancels one timer's waiting deliveries, as a later event
// would have, and answers with the timer as it was. The id is derived
// (router.TimerID), so it is looked up among the waiting timers; only
// that first event's deliveries are cancelled, not another's that waits
// under the same key.
func (r *server) apiCancelTimer(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	ts, err := r.store.Timers(req.Context())
	if err != nil {
		r.storeError(w, err)
		return
	}
	for i := range ts {
		t := &ts[i]
		if t.ID != id {
			continue
		}
		n, err := r.store.CancelTimer(req.Context(), t.Key, t.Source, t.EventID, "operator "+tokenName(req), r.now())
		if err != nil {
			r.storeError(w, err)
			return
		}
		if n == 0 {
			// Between the listing and the update every delivery fired
			// (or an event cancelled them): the timer no longer waits.
			httpjson.Error(w, http.StatusNotFound, "no such timer waiting: it fired or was cancelled just now")
			return
		}
		r.log.Info("timer cancelled", "timer", id, "rule", t.Rule, "source", t.Source, "event_id", t.EventID, "deliveries", n, "by", tokenName(req))
		j := toTimerJSON(t, r.e.Runtime())
		j.Cancelled = n
		httpjson.Write(w, http.StatusOK, j)
		return
	}
	httpjson.Error(w, http.StatusNotFound, "no such timer waiting (it fired, was cancelled, or never was)")
}
