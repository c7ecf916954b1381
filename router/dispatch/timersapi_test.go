package dispatch_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
)

// timersAPIConfig: a missed chat escalates to slack after 5 minutes and
// to pager after 30, unless the same chat of the same department is
// attended first.
const timersAPIConfig = `
admin:
  tokens:
    - {name: ops, token: "${OPS}", scopes: [read, replay]}
    - {name: viewer, token: "${VIEWER}", scopes: [read]}
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: slack, type: fake}
  - {name: pager, type: fake}
rules:
  - name: missed
    when: event == "conversation.missed"
    unless:
      when: event == "conversation.attender.updated"
      same: [entity_id, chat.department_id]
      within: 30m
    to:
      - {sink: slack, text: "{{ .entity_id }} missed", delay: 5m}
      - {sink: pager, text: "{{ .entity_id }} still unanswered"}
`

// missedEvent is a missed chat of department sales; eventTime makes its
// id, so that one chat can be missed twice.
func missedEvent(chat, eventTime string) string {
	return `{"event":"conversation.missed","entity_id":"` + chat + `","event_time":"` + eventTime + `","attempt":1,` +
		`"entity":{"id":"` + chat + `","department_id":"sales"}}`
}

// timerItem is a timer as GET /api/timers shows it.
type timerItem struct {
	ID     string
	Rule   string
	Values []json.RawMessage
	Same   []struct {
		Expr  string
		Value json.RawMessage
	}
	Source     string
	EventID    string `json:"event_id"`
	Event      string
	StartedAt  time.Time `json:"started_at"`
	DueAt      time.Time `json:"due_at"`
	Cancelled  int
	Deliveries []struct {
		ID, Sink string
		DueAt    time.Time `json:"due_at"`
	}
}

// TestTimersAPI, on an injected clock: chat A is missed twice (two first
// events with equal same: values, so two timers under one key) and chat
// B once. The list shows each timer with its same: values beside their
// expressions, its event, start, due time and deliveries; DELETE cancels
// one timer (naming the operator) and leaves the other under its key;
// scopes, unknown ids, the gauge, and a timer that lost a fired step.
func TestTimersAPI(t *testing.T) {
	const ops, viewer = "ops-token-0123456789", "view-token-0123456789"
	var clock atomic.Int64
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	at := func(d time.Duration) { clock.Store(t0.Add(d).UnixNano()) }
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, timersAPIConfig, f, tokenEnv)
	reg := prometheus.NewRegistry()
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Metrics: dispatch.NewMetrics(reg),
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	h := admin.Handler(r, reg)
	runRouter(t, r)
	send := func(body string) {
		t.Helper()
		if w := post(t, r.IngestHandler(), body); w.Code != 202 {
			t.Fatalf("ingest: %d %s", w.Code, w.Body)
		}
	}
	list := func() []timerItem {
		t.Helper()
		var out struct{ Items []timerItem }
		if code := apiDo(t, h, "GET", "/api/timers", viewer, "", &out); code != 200 {
			t.Fatalf("list: %d", code)
		}
		return out.Items
	}

	send(missedEvent("A", "1"))
	at(30 * time.Second)
	send(missedEvent("A", "2"))
	at(time.Minute)
	send(missedEvent("B", "3"))

	items := list()
	if len(items) != 3 {
		t.Fatalf("list: %+v; want three timers", items)
	}
	a1, a2, b := items[0], items[1], items[2]
	if a1.EventID != "conversation.missed:A:1" || a2.EventID != "conversation.missed:A:2" || b.EventID != "conversation.missed:B:3" {
		t.Fatalf("timers in the order %s, %s, %s; want by due time", a1.EventID, a2.EventID, b.EventID)
	}
	if a1.ID == a2.ID || a1.ID[:2] != "t_" {
		t.Errorf("ids %q and %q: want two timers, t_…", a1.ID, a2.ID)
	}
	if a1.Rule != "missed" || a1.Source != "siq" || a1.Event != "conversation.missed" ||
		!a1.StartedAt.Equal(t0) || !a1.DueAt.Equal(t0.Add(5*time.Minute)) || !a2.StartedAt.Equal(t0.Add(30*time.Second)) {
		t.Errorf("A's first timer: %+v", a1)
	}
	if len(a1.Values) != 2 || string(a1.Values[0]) != `"A"` || string(a1.Values[1]) != `"sales"` ||
		len(a1.Same) != 2 || a1.Same[0].Expr != "entity_id" || string(a1.Same[0].Value) != `"A"` ||
		a1.Same[1].Expr != "chat.department_id" || string(a1.Same[1].Value) != `"sales"` {
		t.Errorf("A's same values: %s / %+v", a1.Values, a1.Same)
	}
	if len(a1.Deliveries) != 2 || a1.Deliveries[0].Sink != "slack" || !a1.Deliveries[0].DueAt.Equal(t0.Add(5*time.Minute)) ||
		a1.Deliveries[1].Sink != "pager" || !a1.Deliveries[1].DueAt.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("A's first timer's deliveries: %+v", a1.Deliveries)
	}
	if got := gathered(t, reg, "hookroute_timers_waiting", ""); got != 6 {
		t.Errorf("hookroute_timers_waiting = %v, want 6", got)
	}

	var e struct{ Error string }
	if code := apiDo(t, h, "DELETE", "/api/timers/"+a1.ID, viewer, "", &e); code != 403 {
		t.Errorf("a read-only token cancelled a timer: %d", code)
	}
	if code := apiDo(t, h, "DELETE", "/api/timers/"+a1.ID, "", "", &e); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code := apiDo(t, h, "DELETE", "/api/timers/t_0000000000000000", ops, "", &e); code != 404 {
		t.Errorf("unknown timer: %d %q", code, e.Error)
	}
	var gone timerItem
	if code := apiDo(t, h, "DELETE", "/api/timers/"+a1.ID, ops, "", &gone); code != 200 || gone.ID != a1.ID || gone.Cancelled != 2 ||
		len(gone.Deliveries) != 2 || len(gone.Same) != 2 {
		t.Fatalf("cancel: %d %+v", code, gone)
	}
	ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Rule: "missed"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		switch d.EventID {
		case a1.EventID:
			if d.Status != router.StatusCancelled || d.LastError != "cancelled by operator ops" {
				t.Errorf("%s of A's first timer: %s %q; want cancelled by the operator", d.Sink, d.Status, d.LastError)
			}
		default:
			if d.Status != router.StatusWaiting {
				t.Errorf("%s of %s is %s; want still waiting", d.Sink, d.EventID, d.Status)
			}
		}
	}
	if code := apiDo(t, h, "DELETE", "/api/timers/"+a1.ID, ops, "", &e); code != 404 {
		t.Errorf("cancelling again: %d, want 404", code)
	}
	if items := list(); len(items) != 2 || items[0].ID != a2.ID || items[1].ID != b.ID {
		t.Errorf("list after the cancel: %+v; want A's second timer and B's", items)
	}
	if got := gathered(t, reg, "hookroute_timers_waiting", ""); got != 4 {
		t.Errorf("hookroute_timers_waiting = %v, want 4", got)
	}

	// A's second timer sends its 5-minute step; it waits on with the
	// pager step alone.
	at(5*time.Minute + 45*time.Second)
	waitFor(t, "A's second 5-minute step", func() bool { return len(f.Sinks["slack"].Deliveries()) == 1 })
	items = list()
	if len(items) != 2 || items[0].ID != b.ID || items[1].ID != a2.ID || len(items[1].Deliveries) != 1 ||
		items[1].Deliveries[0].Sink != "pager" || !items[1].DueAt.Equal(t0.Add(30*time.Minute+30*time.Second)) {
		t.Errorf("list after a step fired: %+v", items)
	}
}

// TestUncancellableTimer: a same: that fails on the first event makes a
// timer no event can cancel; the API marks it, and it still fires.
func TestUncancellableTimer(t *testing.T) {
	conf := strings.Replace(timersAPIConfig, "same: [entity_id, chat.department_id]", "same: [int(entity_id)]", 1)
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, tokenEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	runRouter(t, r)
	h := admin.Handler(r, prometheus.NewRegistry())
	if w := post(t, r.IngestHandler(), missedEvent("not-a-number", "1")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	var list struct {
		Items []struct {
			Uncancellable bool
			EventID       string `json:"event_id"`
		}
	}
	if code := apiDo(t, h, "GET", "/api/timers", "view-token-0123456789", "", &list); code != 200 || len(list.Items) != 1 || !list.Items[0].Uncancellable {
		t.Fatalf("timers: %d %+v; want one, marked uncancellable", code, list)
	}
	// An event with the same chat cannot cancel it.
	if w := post(t, r.IngestHandler(), `{"event":"conversation.attender.updated","entity_id":"not-a-number","event_time":"2","attempt":1,"entity":{"id":"not-a-number"}}`); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Status: router.StatusWaiting})
	if err != nil || len(ds) != 2 {
		t.Fatalf("%d waiting, %v; want both still waiting", len(ds), err)
	}
}
