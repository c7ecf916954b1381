package dispatch_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
)

// scheduleConfig: desk only during business hours in Berlin, with a
// holiday; pager only outside them.
const scheduleConfig = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: desk, type: fake}
  - {name: pager, type: fake}
schedules:
  - name: business
    timezone: Europe/Berlin
    weekly: ["mon-fri 09:00-18:00"]
    except: ["2026-03-30"]
rules:
  - name: all
    when: "true"
    to:
      - {sink: desk, text: "x", during: business}
      - {sink: pager, text: "x", outside: business}
`

// TestScheduleDefers runs on an injected clock: a Saturday event goes to
// pager at once and waits for desk until the next working day's 09:00,
// past a daylight-saving change (2026-03-29) and a holiday (Monday), with
// the reason in the log; at that time it goes.
func TestScheduleDefers(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 3, 28, 10, 0, 0, 0, berlin).UnixNano()) // Saturday, CET
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, scheduleConfig, f, pubEnv)
	reg := prometheus.NewRegistry()
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Now: now, Metrics: dispatch.NewMetrics(reg)})
	runRouter(t, r)

	if w := post(t, r.IngestHandler(), event("c1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("pager's delivery", func() bool { return len(f.Sinks["pager"].Deliveries()) == 1 })
	var desk *router.DeliveryRecord
	waitFor("desk's delivery deferred", func() bool {
		ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "desk"})
		if err != nil || len(ds) != 1 || ds[0].LastError == "" {
			return false
		}
		desk = ds[0]
		return true
	})
	// Monday is a holiday: Tuesday 09:00, in summer time (UTC+2).
	if want := time.Date(2026, 3, 31, 9, 0, 0, 0, berlin); !desk.NextAttemptAt.Equal(want) || want.UTC().Hour() != 7 {
		t.Errorf("desk's delivery is due %v; want %v (07:00 UTC)", desk.NextAttemptAt.In(berlin), want)
	}
	if want := "deferred (during: business): closed, opens Tue 09:00 Europe/Berlin"; desk.LastError != want {
		t.Errorf("the log says %q; want %q", desk.LastError, want)
	}
	if n := len(f.Sinks["desk"].Deliveries()); n != 0 || desk.Attempts != 0 {
		t.Fatalf("desk got %d deliveries, %d attempts, on a Saturday", n, desk.Attempts)
	}
	if got := gatheredOutcome(t, reg, "desk", "deferred"); got < 1 {
		t.Errorf("hookroute_delivery_outcomes_total{sink=desk,outcome=deferred} = %v, want at least 1", got)
	}
	clock.Store(time.Date(2026, 3, 31, 9, 0, 1, 0, berlin).UnixNano())
	waitFor("desk's delivery on Tuesday", func() bool { return len(f.Sinks["desk"].Deliveries()) == 1 })
}

func gatheredOutcome(t *testing.T, reg *prometheus.Registry, sink, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hookroute_delivery_outcomes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var s, o string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "sink":
					s = l.GetValue()
				case "outcome":
					o = l.GetValue()
				}
			}
			if s == sink && strings.EqualFold(o, outcome) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestCooldownSuppresses: three events for one visitor within the
// cooldown give one delivery and two suppressed, each naming the one
// that caused it; the first after the cooldown sees .suppressed == 2.
// Another visitor has a cooldown of its own.
func TestCooldownSuppresses(t *testing.T) {
	const conf = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: desk, type: fake}
rules:
  - name: sad
    when: "true"
    to:
      - sink: desk
        text: "{{ .entity_id }} after {{ .suppressed }} suppressed"
        cooldown: {key: "{{ .visitor.name }}", for: 1h}
`
	var clock atomic.Int64
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	reg := prometheus.NewRegistry()
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Now: func() time.Time { return time.Unix(0, clock.Load()) }, Metrics: dispatch.NewMetrics(reg)})
	runRouter(t, r)

	send := func(id, visitor string) {
		t.Helper()
		body := `{"event":"conversation.rated","entity_id":"` + id + `","event_time":"1","attempt":1,"entity":{"rating":"sad","visitor":{"name":"` + visitor + `"}}}`
		if w := post(t, r.IngestHandler(), body); w.Code != 202 {
			t.Fatalf("ingest: %d %s", w.Code, w.Body)
		}
	}
	finished := func(n int) []*router.DeliveryRecord {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{})
			if err != nil {
				t.Fatal(err)
			}
			done := 0
			for _, d := range ds {
				if d.Status != router.StatusPending {
					done++
				}
			}
			if done == n {
				return ds
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d deliveries finished", done, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send("c1", "ann")
	finished(1)
	clock.Store(t0.Add(10 * time.Minute).UnixNano())
	send("c2", "ann")
	send("c3", "ann")
	send("c4", "bob")
	ds := finished(4)
	var first string
	for _, d := range ds {
		if d.EventID == "conversation.rated:c1:1" {
			first = d.ID
		}
	}
	suppressed := 0
	for _, d := range ds {
		if d.Status == router.StatusSuppressed {
			suppressed++
			if want := "suppressed by the cooldown of delivery " + first + " (cooldown key ann)"; d.LastError != want || d.Attempts != 0 {
				t.Errorf("suppressed %s: %q, %d attempts; want %q, none", d.ID, d.LastError, d.Attempts, want)
			}
		}
	}
	if suppressed != 2 {
		t.Fatalf("%d suppressed; want 2 (c2, c3)", suppressed)
	}
	clock.Store(t0.Add(61 * time.Minute).UnixNano())
	send("c5", "ann")
	finished(5)
	var texts []string
	for _, d := range f.Sinks["desk"].Deliveries() {
		texts = append(texts, d.Fields["text"])
	}
	if want := []string{"[c1] after [0] suppressed", "[c4] after [0] suppressed", "[c5] after [2] suppressed"}; strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q; want %q", texts, want)
	}
	if got := gatheredOutcome(t, reg, "desk", "suppressed"); got != 2 {
		t.Errorf("outcomes{suppressed} = %v, want 2", got)
	}
}

// TestWhenClosedDrop: outside its schedule a when_closed: drop route's
// delivery is suppressed, not deferred.
func TestWhenClosedDrop(t *testing.T) {
	conf := strings.Replace(scheduleConfig, "{sink: desk, text: \"x\", during: business}", "{sink: desk, text: \"x\", during: business, when_closed: drop}", 1)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC).UnixNano()) // Saturday
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	runRouter(t, r)
	if w := post(t, r.IngestHandler(), event("c1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "desk"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].Status == router.StatusSuppressed {
			if want := "suppressed (during: business, when_closed: drop): closed, opens Mon 09:00 Europe/Berlin"; ds[0].LastError != want {
				t.Errorf("the log says %q; want %q", ds[0].LastError, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("desk's delivery: %+v; want suppressed", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(f.Sinks["desk"].Deliveries()); n != 0 {
		t.Errorf("desk got %d deliveries", n)
	}
}

// TestGroupDigest: five events for one visitor within the wait give one
// notification listing the five, oldest first, with the group's facts;
// the grouped deliveries name their carrier; another visitor's group is
// its own; max lists the first and counts the rest.
func TestGroupDigest(t *testing.T) {
	const conf = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: slack, type: fake}
rules:
  - name: sad
    when: "true"
    group: {by: [visitor.name], wait: 400ms, interval: 1m, max: 4}
    to:
      - sink: slack
        text: '{{ .group.count }} from {{ .group.key }}:{{ range .events }} {{ .entity_id }}{{ end }} (+{{ .group.truncated }})'
`
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	runRouter(t, r)
	send := func(id, visitor string) {
		t.Helper()
		body := `{"event":"conversation.rated","entity_id":"` + id + `","event_time":"1","attempt":1,"entity":{"rating":"sad","visitor":{"name":"` + visitor + `"}}}`
		if w := post(t, r.IngestHandler(), body); w.Code != 202 {
			t.Fatalf("ingest: %d %s", w.Code, w.Body)
		}
		time.Sleep(5 * time.Millisecond) // distinct receive times: a stable order
	}
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		send(id, "ann")
	}
	send("b1", "bob")
	deadline := time.Now().Add(10 * time.Second)
	for len(f.Sinks["slack"].Deliveries()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications; want 2", len(f.Sinks["slack"].Deliveries()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // nothing more may come
	var texts []string
	for _, d := range f.Sinks["slack"].Deliveries() {
		texts = append(texts, d.Fields["text"])
	}
	want := map[string]bool{"[5] from [visitor.name=ann]: [a1] [a2] [a3] [a4] (+[1])": true, "[1] from [visitor.name=bob]: [b1] (+[0])": true}
	if len(texts) != 2 || !want[texts[0]] || !want[texts[1]] {
		t.Fatalf("notifications %q; want %v", texts, want)
	}
	ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Status: router.StatusGrouped})
	if err != nil || len(ds) != 4 {
		t.Fatalf("%d grouped deliveries, %v; want 4", len(ds), err)
	}
	for _, d := range ds {
		if !strings.HasPrefix(d.LastError, "grouped into delivery d_") || !strings.HasSuffix(d.LastError, "(group visitor.name=ann)") {
			t.Errorf("grouped delivery says %q", d.LastError)
		}
	}
}

// TestGroupCarrierNotSetAsideWhileWaiting: a silence made while a group
// waits, matching its carrier's event, does not strand the group: the
// carrier passed the silences when it joined, and the digest goes out
// with every member.
func TestGroupCarrierNotSetAsideWhileWaiting(t *testing.T) {
	const conf = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: slack, type: fake}
rules:
  - name: sad
    when: "true"
    group: {wait: 500ms, interval: 1m}
    to: [{sink: slack, text: '{{ range .events }}{{ .entity_id }} {{ end }}'}]
`
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	runRouter(t, r)
	if w := post(t, r.IngestHandler(), event("s1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	waitFor(t, "the carrier waiting", func() bool {
		open, err := st.OpenGroups(context.Background())
		return err == nil && open == 1
	})
	if _, err := r.CreateSilence(context.Background(), dispatch.SilenceInput{Matcher: `entity_id == "s1"`, Duration: time.Hour}, "ops"); err != nil {
		t.Fatal(err)
	}
	if w := post(t, r.IngestHandler(), event("s2", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	waitFor(t, "the digest", func() bool { return len(f.Sinks["slack"].Deliveries()) == 1 })
	if got := f.Sinks["slack"].Deliveries()[0].Fields["text"]; got != "[s1] [s2] " {
		t.Errorf("digest %q; want both members", got)
	}
	if open, err := st.OpenGroups(context.Background()); err != nil || open != 0 {
		t.Errorf("%d groups open after the flush, %v", open, err)
	}
}

// TestCooldownReleasedByDeadHolder: a holder that went dead sent nothing,
// so the next delivery with the key value is sent, not suppressed.
func TestCooldownReleasedByDeadHolder(t *testing.T) {
	const conf = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: desk, type: fake}
rules:
  - name: sad
    when: "true"
    to: [{sink: desk, text: "x", cooldown: {key: "{{ .visitor.name }}", for: 1h}}]
`
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	f.Sinks["desk"].Errs = []error{router.Permanent(errors.New("400 channel_not_found"))}
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	runRouter(t, r)
	if w := post(t, r.IngestHandler(), event("d1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	waitFor(t, "the first delivery dead", func() bool {
		ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Status: router.StatusDead})
		return err == nil && len(ds) == 1
	})
	if w := post(t, r.IngestHandler(), event("d2", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d", w.Code)
	}
	waitFor(t, "the second delivered", func() bool {
		ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Status: router.StatusDelivered})
		return err == nil && len(ds) == 1
	})
}
