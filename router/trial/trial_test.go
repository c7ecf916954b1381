package trial

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router/rules"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
)

func trialRuntime(t *testing.T) (*rules.Runtime, *testkit.FakeFactory) {
	t.Helper()
	return mustLoad(t, testkit.TrialConfig, map[string]string{"TOK": testkit.TrialToken, "OPS_TOKEN": "ops-token-0123456789", "VIEW_TOKEN": "view-token-0123456789"})
}

func TestTrialRendersWithoutSending(t *testing.T) {
	rt, f := trialRuntime(t)
	res, err := Run(context.Background(), rt, Input{Source: "siq", Payload: testkit.ReadEvent(t, "conversation-rated-sad.json")}, Options{Capture: &testkit.CaptureFactory{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.EventName != "conversation.rated" || res.EventID != "conversation.rated:40526000001808033:1567065865617" || res.Send {
		t.Errorf("event %+v", res)
	}
	var names []string
	for _, r := range res.Rules {
		names = append(names, fmt.Sprintf("%s=%t", r.Name, r.Matched))
	}
	if want := []string{"sad-chat=true", "missed-chat=false", "orders=false"}; !slices.Equal(names, want) {
		t.Errorf("rules %v, want %v", names, want)
	}
	if got := res.Rules[1].Explanation; !slices.Equal(got, []string{`event == "conversation.missed" → "conversation.rated" == "conversation.missed" → false`}) {
		t.Errorf("missed-chat explanation %q", got)
	}
	if got := res.Rules[2].Explanation; !slices.Equal(got, []string{`the rule is for source "gen" only`}) {
		t.Errorf("orders explanation %q", got)
	}
	if len(res.Routes) != 3 {
		t.Fatalf("%d routes, want 3: %+v", len(res.Routes), res.Routes)
	}
	out := res.Routes[0]
	if out.Sink != "out" || out.Kind != "fake" || out.Error != "" || out.Result != nil || out.DedupKey != "chat-40526000001808033" {
		t.Errorf("route to out: %+v", out)
	}
	if out.Fields["text"] != "[Tricia] is sad: [Nobody answered my question about the refund]" {
		t.Errorf("text %q", out.Fields["text"])
	}
	req := out.Request
	if req == nil {
		t.Fatal("no request rendered for out")
	}
	if req.Method != "POST" || req.URL != "https://api.example/post?token=<redacted>" || req.Headers["Authorization"] != "<redacted>" || req.Headers["X-Token"] != "<redacted>" {
		t.Errorf("request %+v", req)
	}
	if !strings.Contains(req.Body, `"token":"<redacted>"`) || !strings.Contains(req.Body, "Tricia") || !strings.HasPrefix(req.Headers["X-Delivery"], "trial-") {
		t.Errorf("request body %s, headers %v", req.Body, req.Headers)
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), testkit.TrialToken) {
		t.Errorf("the sink's token leaked into the trial result: %s", b)
	}
	if off := res.Routes[1]; off.Request != nil || !strings.Contains(off.Error, "switched off") || off.Fields["text"] != "never" {
		t.Errorf("route to the switched-off sink: %+v", off)
	}
	if bad := res.Routes[2]; bad.Request != nil || !strings.Contains(bad.Error, "render text") {
		t.Errorf("route with a failing template: %+v", bad)
	}
	for name, s := range f.Sinks {
		if n := len(s.Deliveries()); n != 0 {
			t.Errorf("sink %s got %d deliveries from a trial without send", name, n)
		}
	}
}

func TestTrialSendDeliversOnceWithoutDedupKey(t *testing.T) {
	rt, f := trialRuntime(t)
	res, err := Run(context.Background(), rt, Input{Source: "siq", Payload: testkit.ReadEvent(t, "conversation-rated-sad.json"), Send: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := f.Sinks["out"].Deliveries()
	if len(got) != 1 {
		t.Fatalf("out got %d deliveries, want 1", len(got))
	}
	d := got[0]
	if !strings.HasPrefix(d.ID, "trial-") || d.DedupKey != "" || d.RemoteID != "" || d.Attempt != 1 || d.Fields["text"] == "" {
		t.Errorf("delivery %+v", d)
	}
	if r := res.Routes[0].Result; r == nil || r.StatusCode != 200 || r.Error != "" {
		t.Errorf("result %+v", r)
	}
	// Neither the switched-off sink nor the route whose template fails is
	// sent to.
	if res.Routes[1].Result != nil || res.Routes[2].Result != nil || len(f.Sinks["log"].Deliveries()) != 0 {
		t.Errorf("routes with errors were sent: %+v", res.Routes[1:])
	}
}

func TestTrialInputErrors(t *testing.T) {
	rt, _ := trialRuntime(t)
	for _, c := range []struct {
		in   Input
		want string
	}{
		{Input{Source: "nope", Payload: []byte(`{}`)}, `no source "nope"`},
		{Input{Payload: []byte(`{}`)}, "name a source: the config has siq, gen"},
		{Input{Source: "siq", Payload: []byte(`{"entity": {}}`)}, "does not decode"},
		{Input{Source: "gen", Payload: []byte(`{`)}, "does not decode"},
	} {
		_, err := Run(context.Background(), rt, c.in, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.in, err, c.want)
		}
	}
}

// securedSink signs with the delivery's key, as a secured http sink does.
type securedSink struct{ testkit.TokenSink }

func (s *securedSink) Secured() bool { return true }

func (s *securedSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	if d.SigningKey == nil {
		return router.Result{}, fmt.Errorf("no signing key")
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://api.example/signed", strings.NewReader("{}"))
	req.Header.Set("X-Siqsignature", fmt.Sprintf("sig-%d", d.SigningKey.N.BitLen()))
	resp, err := s.Client.Do(req)
	if err != nil {
		return router.Result{}, err
	}
	resp.Body.Close()
	return router.Result{StatusCode: resp.StatusCode}, nil
}

type securedFactory struct{ testkit.CaptureFactory }

func (f *securedFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	return &securedSink{testkit.TokenSink{Client: &http.Client{Transport: testkit.RecordingTransport{}}}}, nil
}

func TestTrialSecuredSinks(t *testing.T) {
	rt, _ := trialRuntime(t)
	payload := testkit.ReadEvent(t, "conversation-rated-sad.json")
	res, err := Run(context.Background(), rt, Input{Source: "siq", Payload: payload}, Options{Capture: &securedFactory{}})
	if err != nil {
		t.Fatal(err)
	}
	// Rendered with a stand-in key, whose signature is not shown.
	if req := res.Routes[0].Request; req == nil || req.Headers["X-Siqsignature"] != signatureShown {
		t.Errorf("rendered request of a secured sink: %+v (error %q)", req, res.Routes[0].Error)
	}
	// Sent only with the router's key.
	live := map[string]*rules.SinkRuntime{}
	for name, sr := range rt.Sinks {
		c := *sr
		c.Sink = &securedSink{testkit.TokenSink{Client: &http.Client{Transport: testkit.RecordingTransport{}}}}
		live[name] = &c
	}
	res, err = Run(context.Background(), rt, Input{Source: "siq", Payload: payload, Send: true}, Options{Sinks: live})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Routes[0].Result; r == nil || !strings.Contains(r.Error, "run this trial through the admin API") {
		t.Errorf("send to a secured sink without keys: %+v", r)
	}
	res, err = Run(context.Background(), rt, Input{Source: "siq", Payload: payload, Send: true}, Options{Sinks: live,
		SigningKey: func(context.Context, string) (*rsa.PrivateKey, error) {
			return nil, fmt.Errorf("the sink has no signing key yet")
		}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Routes[0].Result; r == nil || r.Error != "not sent: no signing key: the sink has no signing key yet" {
		t.Errorf("send to a secured sink whose key is missing: %+v", r)
	}
}

// TestTrialShowsActionAndLinks: with a store to ask, a trial renders the
// links the dedup key has and says whether a delivery would create or
// follow up; without one it says the key is taken as new.
func TestTrialShowsActionAndLinks(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, `text: "{{ .visitor.name }}"`,
		`text: 'ticket {{ (index .links "out").url }}'`+"\n        dedup_key: \"chat-{{ .chat.id }}\"", 1)
	rt, _ := mustLoad(t, src, nil)
	in := Input{Source: "siq", Payload: testkit.ReadEvent(t, "conversation-rated-sad.json")}
	var asked []string
	lookup := func(_ context.Context, key string) (map[string]router.Link, error) {
		asked = append(asked, key)
		return map[string]router.Link{"out": {"id": "R7", "url": "https://desk.example/7"}}, nil
	}
	res, err := Run(context.Background(), rt, in, Options{Links: lookup})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Routes[0]
	if !slices.Equal(asked, []string{"chat-40526000001808033"}) {
		t.Errorf("looked up %v; want the route's key", asked)
	}
	if r.Fields["text"] != "ticket [https://desk.example/7]" || r.Action != "follow up on R7" || r.Links["out"]["url"] != "https://desk.example/7" {
		t.Errorf("with a store: text %q, action %q, links %v", r.Fields["text"], r.Action, r.Links)
	}
	res, err = Run(context.Background(), rt, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r = res.Routes[0]
	if r.Fields["text"] != "ticket " || r.Action != "create a new object (no store was asked: the key is taken as new)" || r.Links != nil {
		t.Errorf("without a store: text %q, action %q, links %v", r.Fields["text"], r.Action, r.Links)
	}
	lookupFails := func(context.Context, string) (map[string]router.Link, error) {
		return nil, fmt.Errorf("database is locked")
	}
	if res, err = Run(context.Background(), rt, in, Options{Links: lookupFails}); err != nil || !strings.Contains(res.Routes[0].Error, "database is locked") {
		t.Errorf("a failed lookup: %v, %+v; want the route's error to say so", err, res)
	}
}

// TestTrialShowsSchedule: a route kept to a schedule says whether it
// would go at the trial's time, or wait, and until when.
func TestTrialShowsSchedule(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, `text: "{{ .visitor.name }}"`, `text: "{{ .visitor.name }}"`+"\n        during: business", 1) +
		"schedules:\n  - {name: business, timezone: Europe/Berlin, weekly: ['mon-fri 09:00-18:00']}\n"
	rt, _ := mustLoad(t, src, nil)
	in := Input{Source: "siq", Payload: testkit.ReadEvent(t, "conversation-rated-sad.json")}
	for at, want := range map[time.Time]string{
		time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC): "would be deferred (during: business): closed, opens Mon 09:00 Europe/Berlin",
		time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC): "would go now (during: business): open until 18:00 Europe/Berlin",
	} {
		res, err := Run(context.Background(), rt, in, Options{Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Routes[0].Schedule; got != want {
			t.Errorf("at %v: %q, want %q", at, got, want)
		}
	}
}

// TestTrialTimerWaits: a route of a rule with unless: waits; the trial
// says until when and what would cancel it, with the same: values, and
// renders .timer as it would be when the timer fires.
func TestTrialTimerWaits(t *testing.T) {
	rt, _ := mustLoad(t, timerConfig, nil)
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	res, err := Run(context.Background(), rt, Input{Source: "siq", Payload: testkit.ReadEvent(t, "conversation-missed.json")}, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Routes {
		got = append(got, r.Rule+" → "+r.Sink+": "+r.Outcome+": "+r.Why)
	}
	want := []string{
		`missed-unanswered → slack: waiting: fires at +5m0s (2026-12-07T10:05:00Z) unless a later event matches unless.when with the same entity_id = "40526000001808100"`,
		`missed-unanswered → pager: waiting: fires at +30m0s (2026-12-07T10:30:00Z) unless a later event matches unless.when with the same entity_id = "40526000001808100"`,
		"missed-log → log: sent: ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("routes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if txt := res.Routes[0].Fields["text"]; txt != "[40526000001808100] missed [5m0s] ago, at [2026-12-07 10:00:00 +0000 UTC]" {
		t.Errorf("slack text %q; want .timer as when it fires", txt)
	}
	if len(res.Cancels) != 0 {
		t.Errorf("a missed chat cancels %+v", res.Cancels)
	}
	if b, _ := json.Marshal(res); strings.Contains(string(b), `"cancels"`) {
		t.Errorf("JSON of an event that cancels nothing has cancels: %s", b)
	}

	// A same: that fails on the first event: nothing can cancel the timer.
	rt, _ = mustLoad(t, strings.Replace(timerConfig, "same: [entity_id]", "same: [int(entity_id) / 0]", 1), nil)
	res, err = Run(context.Background(), rt, Input{Source: "siq", Payload: testkit.ReadEvent(t, "conversation-missed.json")}, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if why := res.Routes[0].Why; !strings.HasPrefix(why, "fires at +5m0s (2026-12-07T10:05:00Z) whatever comes later: unless.same fails on this event (") || !strings.HasSuffix(why, "), so no later event can cancel it") {
		t.Errorf("why %q", why)
	}
}

// TestTrialCancels: an event matching a rule's unless.when lists the
// waiting deliveries it would cancel, as the store answers for the timer
// key; without a store it names the key instead.
func TestTrialCancels(t *testing.T) {
	rt, _ := mustLoad(t, timerConfig, nil)
	in := Input{Source: "siq", Payload: attended(missedChat)}
	const key = `["missed-unanswered","40526000001808100"]`
	var asked []string
	waiting := func(_ context.Context, k string) ([]string, error) {
		asked = append(asked, k)
		if k == key {
			return []string{"d-slack", "d-pager"}, nil
		}
		return nil, nil
	}
	res, err := Run(context.Background(), rt, in, Options{WaitingTimers: waiting})
	if err != nil {
		t.Fatal(err)
	}
	want := []TimerCancel{{Rule: "missed-unanswered", Key: key, Same: `entity_id = "40526000001808100"`, Deliveries: []string{"d-slack", "d-pager"}}}
	if !reflect.DeepEqual(res.Cancels, want) || !slices.Equal(asked, []string{key}) {
		t.Errorf("cancels %+v (asked %q), want %+v", res.Cancels, asked, want)
	}
	if len(res.Routes) != 0 {
		t.Errorf("the attended event made routes %+v", res.Routes)
	}

	// Another chat: nothing waits under its key, and the answer says so.
	res, err = Run(context.Background(), rt, Input{Source: "siq", Payload: attended("1")}, Options{WaitingTimers: waiting})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Cancels; len(c) != 1 || c[0].Deliveries == nil || len(c[0].Deliveries) != 0 || c[0].Key != `["missed-unanswered","1"]` {
		t.Errorf("cancels of another chat %+v; want an empty list of deliveries", c)
	}
	if b, _ := json.Marshal(res); !strings.Contains(string(b), `"cancels":[{"rule":"missed-unanswered","key":"[\"missed-unanswered\",\"1\"]","same":"entity_id = \"1\"","deliveries":[]}]`) {
		t.Errorf("JSON %s", b)
	}

	// Offline: no store was asked, and the key is named.
	res, err = Run(context.Background(), rt, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Cancels; len(c) != 1 || c[0].Deliveries != nil || c[0].Key != key ||
		c[0].Note != "no store was asked: a running router would cancel every delivery waiting under timer key "+key {
		t.Errorf("offline cancels %+v", c)
	}

	// A store that fails says so.
	res, err = Run(context.Background(), rt, in, Options{WaitingTimers: func(context.Context, string) ([]string, error) { return nil, errors.New("disk on fire") }})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Cancels; len(c) != 1 || c[0].Error != "look up the waiting timers: disk on fire" || c[0].Deliveries != nil {
		t.Errorf("cancels with a failing store %+v", c)
	}
}
