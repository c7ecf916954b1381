package dispatch_test

import (
	"context"
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

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
