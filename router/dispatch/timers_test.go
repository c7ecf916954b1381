package dispatch_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/prometheus/client_golang/prometheus"
)

// timerConfig: a missed chat escalates to slack after 5 minutes and to
// pager after 30, unless the chat is attended first.
const timerConfig = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: slack, type: fake}
  - {name: pager, type: fake}
rules:
  - name: missed-unanswered
    when: event == "conversation.missed"
    unless:
      when: event == "conversation.attender.updated"
      same: [entity_id]
      within: 30m
    to:
      - {sink: slack, text: "{{ .entity_id }} missed {{ .timer.waited }} ago", delay: 5m}
      - {sink: pager, text: "{{ .entity_id }} still unanswered"}
`

func timerEvent(name, chat string) string {
	return `{"event":"` + name + `","entity_id":"` + chat + `","event_time":"1","attempt":1,"entity":{"id":"` + chat + `"}}`
}

// TestTimers runs on an injected clock: chat A's timer fires each step at
// its time; chat B, attended after 3 minutes, has both steps cancelled,
// naming the event; chat C, attended after 10 minutes, got the 5-minute
// step and has the 30-minute one cancelled.
func TestTimers(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	at := func(d time.Duration) { clock.Store(t0.Add(d).UnixNano()) }
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, timerConfig, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	runRouter(t, r)
	send := func(name, chat string) {
		t.Helper()
		if w := post(t, r.IngestHandler(), timerEvent(name, chat)); w.Code != 202 && w.Code != 200 {
			t.Fatalf("ingest: %d %s", w.Code, w.Body)
		}
	}
	statuses := func(sink string) map[string]*router.DeliveryRecord {
		t.Helper()
		ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*router.DeliveryRecord{}
		for _, d := range ds {
			out[strings.Split(d.EventID, ":")[1]] = d
		}
		return out
	}
	texts := func(sink string) []string {
		var out []string
		for _, d := range f.Sinks[sink].Deliveries() {
			out = append(out, d.Fields["text"])
		}
		return out
	}
	send("conversation.missed", "A")
	send("conversation.missed", "B")
	send("conversation.missed", "C")
	if d := statuses("slack")["A"]; d.Status != router.StatusWaiting || !d.NextAttemptAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("A's slack step: %s due %v; want waiting until +5m", d.Status, d.NextAttemptAt)
	}
	at(3 * time.Minute)
	send("conversation.attender.updated", "B")
	for _, sink := range []string{"slack", "pager"} {
		if d := statuses(sink)["B"]; d.Status != router.StatusCancelled || !strings.HasPrefix(d.LastError, "cancelled by event siq/conversation.attender.updated:B") {
			t.Errorf("B's %s step: %s %q; want cancelled by the attended event", sink, d.Status, d.LastError)
		}
	}
	time.Sleep(300 * time.Millisecond) // a firing round: nothing is due
	if n := len(f.Sinks["slack"].Deliveries()); n != 0 {
		t.Fatalf("slack got %d before 5 minutes", n)
	}
	at(5*time.Minute + time.Second)
	waitFor(t, "the 5-minute steps of A and C", func() bool { return len(f.Sinks["slack"].Deliveries()) == 2 })
	at(10 * time.Minute)
	send("conversation.attender.updated", "C")
	if d := statuses("pager")["C"]; d.Status != router.StatusCancelled {
		t.Errorf("C's pager step is %s after C was attended; want cancelled", d.Status)
	}
	at(30*time.Minute + time.Second)
	waitFor(t, "A's 30-minute step", func() bool { return len(f.Sinks["pager"].Deliveries()) == 1 })
	time.Sleep(300 * time.Millisecond)
	if got := texts("pager"); len(got) != 1 || got[0] != "[A] still unanswered" {
		t.Errorf("pager got %q; want A's step alone", got)
	}
	for _, txt := range texts("slack") {
		if !strings.HasSuffix(txt, " missed [5m1s] ago") {
			t.Errorf("slack text %q; want the time waited", txt)
		}
	}
	// A cancel after the step fired changes nothing.
	send("conversation.attender.updated", "A")
	if d := statuses("pager")["A"]; d.Status != router.StatusDelivered {
		t.Errorf("A's pager step is %s; want delivered (fired before the cancel)", d.Status)
	}
}

// TestTimerTrial: through the admin trial, a first event's routes say when
// they fire, and an event that would cancel lists the deliveries waiting
// under its key, cancelling none of them.
func TestTimerTrial(t *testing.T) {
	conf := "admin:\n  tokens:\n    - {name: ops, token: \"${OPS}\", scopes: [read, trial]}\n" + timerConfig
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, tokenEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	runRouter(t, r)
	h := admin.Handler(r, prometheus.NewRegistry())
	if w := post(t, r.IngestHandler(), timerEvent("conversation.missed", "A")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	var first struct {
		Routes []struct{ Sink, Outcome, Why string }
	}
	if code := apiDo(t, h, "POST", "/api/trial", "ops-token-0123456789", `{"source": "siq", "event": `+timerEvent("conversation.missed", "Z")+`}`, &first); code != 200 || len(first.Routes) != 2 {
		t.Fatalf("trial: %d %+v", code, first)
	}
	for _, r := range first.Routes {
		if r.Outcome != "waiting" || !strings.Contains(r.Why, `entity_id = "Z"`) {
			t.Errorf("%s: %s (%s); want waiting, naming the same value", r.Sink, r.Outcome, r.Why)
		}
	}
	var cancel struct {
		Cancels []struct {
			Rule       string
			Deliveries []string
		}
	}
	if code := apiDo(t, h, "POST", "/api/trial", "ops-token-0123456789", `{"source": "siq", "event": `+timerEvent("conversation.attender.updated", "A")+`}`, &cancel); code != 200 {
		t.Fatalf("trial: %d", code)
	}
	if len(cancel.Cancels) != 1 || cancel.Cancels[0].Rule != "missed-unanswered" || len(cancel.Cancels[0].Deliveries) != 2 {
		t.Fatalf("cancels %+v; want A's two waiting deliveries", cancel.Cancels)
	}
	ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Status: router.StatusWaiting})
	if err != nil || len(ds) != 2 {
		t.Fatalf("%d waiting, %v; want both still waiting after the trial", len(ds), err)
	}
}

// TestTimersOutliveTheirRule: a reload that removes a rule with unless:
// leaves its waiting timers to fire as they were made.
func TestTimersOutliveTheirRule(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, timerConfig, f, pubEnv)
	without := strings.Replace(timerConfig, "rules:", "rules:\n  - {name: other, when: 'false', to: [{sink: slack, text: x}]}\n  - name: gone", 1)
	without = without[:strings.Index(without, "  - name: gone")] // the timer rule removed
	next, err := rules.Load("rules.yaml", []byte(without), f, pubEnv)
	if err != nil {
		t.Fatal(err)
	}
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Now: func() time.Time { return time.Unix(0, clock.Load()) },
		Reload: func() (*rules.Runtime, error) { return next, nil }})
	runRouter(t, r)
	if w := post(t, r.IngestHandler(), timerEvent("conversation.missed", "A")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Runtime().Rule("missed-unanswered"); ok {
		t.Fatal("the reload kept the rule")
	}
	clock.Store(t0.Add(31 * time.Minute).UnixNano())
	waitFor(t, "both steps delivered", func() bool {
		ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Status: router.StatusDelivered})
		return err == nil && len(ds) == 2
	})
	if got := f.Sinks["pager"].Deliveries(); len(got) != 1 || got[0].Fields["text"] != "[A] still unanswered" {
		t.Errorf("pager got %+v; want A's step rendered by the removed rule", got)
	}
}
