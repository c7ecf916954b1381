package rules

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/source"
)

// salesiqView decodes a test event as a salesiq source does.
func salesiqView(t *testing.T, name string) *router.View {
	t.Helper()
	v, err := source.SalesIQ{}.Decode(&router.Incoming{Source: "siq", Body: readEvent(t, name), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func genericView(t *testing.T, body string) *router.View {
	t.Helper()
	v, err := source.Generic{}.Decode(&router.Incoming{Source: "gen", Body: []byte(body), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// explain compiles and runs when on view like a rule, then explains it.
func explain(t *testing.T, when string, env any, view *router.View) []string {
	t.Helper()
	p, err := compileWhen(when, env)
	if err != nil {
		t.Fatalf("compile %s: %v", when, err)
	}
	out, err := expr.Run(p, view.Env)
	return ExplainWhen(when, env, view.Env, out, err)
}

func TestExplainWhen(t *testing.T) {
	happy := salesiqView(t, "conversation-rated-happy.json")
	gen := genericView(t, `{"kind": "order.created", "total": 120, "tags": ["vip", "eu"], "user": null}`)
	cases := []struct {
		when string
		env  any
		view *router.View
		want []string
	}{
		{`chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "sad" → "happy" == "sad" → false`,
		}},
		{`chat.rating != "happy"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating != "happy" → "happy" != "happy" → false`,
		}},
		{`attempt < 1`, router.SalesIQEvent{}, happy, []string{
			`attempt < 1 → 1 < 1 → false`,
		}},
		{`chat.rating in ["sad", "neutral"]`, router.SalesIQEvent{}, happy, []string{
			`chat.rating in ["sad", "neutral"] → "happy" in ["sad","neutral"] → false`,
		}},
		{`event == "conversation.rated" && chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`event == "conversation.rated" → "conversation.rated" == "conversation.rated" → true`,
			`chat.rating == "sad" → "happy" == "sad" → false`,
			`event == "conversation.rated" && chat.rating == "sad" → false: the left side is true, so the right side (false) decides`,
		}},
		{`event == "conversation.missed" && chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`event == "conversation.missed" → "conversation.rated" == "conversation.missed" → false`,
			`event == "conversation.missed" && chat.rating == "sad" → false: the left side is false, so the right side is not evaluated`,
		}},
		{`chat.rating == "sad" || chat.rating == "neutral"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "sad" → "happy" == "sad" → false`,
			`chat.rating == "neutral" → "happy" == "neutral" → false`,
			`chat.rating == "sad" || chat.rating == "neutral" → false: the left side is false, so the right side (false) decides`,
		}},
		{`chat.rating == "happy" or chat.feedback == ""`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "happy" → "happy" == "happy" → true`,
			`chat.rating == "happy" or chat.feedback == "" → true: the left side is true, so the right side is not evaluated`,
		}},
		{`!(chat.feedback startsWith "Quick")`, router.SalesIQEvent{}, happy, []string{
			`chat.feedback startsWith "Quick" → "Quick and friendly, thanks!" startsWith "Quick" → true`,
			`!(chat.feedback startsWith "Quick") → false`,
		}},
		{`chat.rating not in ["happy"]`, router.SalesIQEvent{}, happy, []string{
			`chat.rating in ["happy"] → "happy" in ["happy"] → true`,
			`not (chat.rating in ["happy"]) → false`,
		}},
		{`len(chat.feedback) > 100`, router.SalesIQEvent{}, happy, []string{
			`len(chat.feedback) > 100 → 27 > 100 → false`,
		}},
		{`hasPrefix(chat.question, "refund")`, router.SalesIQEvent{}, happy, []string{
			`hasPrefix(chat.question, "refund") → hasPrefix("", "refund") → false`,
		}},
		{`kind startsWith "order." && total >= 100`, source.GenericEnv(), gen, []string{
			`kind startsWith "order." → "order.created" startsWith "order." → true`,
			`total >= 100 → 120 >= 100 → true`,
			`kind startsWith "order." && total >= 100 → true: the left side is true, so the right side (true) decides`,
		}},
		{`payload?.customer?.name == "Tricia"`, source.GenericEnv(), gen, []string{
			`payload?.customer?.name == "Tricia" → nil == "Tricia" → false`,
		}},
		{`"vip" in tags`, source.GenericEnv(), gen, []string{
			`"vip" in tags → "vip" in ["vip","eu"] → true`,
		}},
		{`any(tags, # startsWith "v")`, source.GenericEnv(), gen, []string{
			`any(tags, # startsWith "v") → true`,
		}},
		{`user.name == "x"`, source.GenericEnv(), gen, []string{
			`user.name == "x" → (error: cannot fetch name from <nil>) == "x" → error: cannot fetch name from <nil>`,
		}},
		{`total > 100 ? kind == "order.created" : false`, source.GenericEnv(), gen, []string{
			`total > 100 → 120 > 100 → true`,
			`kind == "order.created" → "order.created" == "order.created" → true`,
			`total > 100 ? kind == "order.created" : false → true`,
		}},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			got := explain(t, c.when, c.env, c.view)
			if !slices.Equal(got, c.want) {
				t.Errorf("explanation:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(c.want, "\n      "))
			}
		})
	}
}

func TestExplainFallsBackToTheResult(t *testing.T) {
	// Not parseable by itself: the overall result is all there is to say.
	got := ExplainWhen("chat.rating ==", router.SalesIQEvent{}, &router.SalesIQEvent{}, false, nil)
	if want := []string{"chat.rating == → false"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// A sub-expression that does not compile on its own (the env given
	// here lacks chat): fall back, not half an explanation.
	got = ExplainWhen(`chat.rating == "sad" && true`, struct{}{}, &router.SalesIQEvent{}, nil, fmt.Errorf("boom"))
	if want := []string{`chat.rating == "sad" && true → error: boom`}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExplainIsBounded(t *testing.T) {
	when := strings.Repeat(`chat.rating == "sad" || `, 200) + "false"
	view := salesiqView(t, "conversation-rated-happy.json")
	got := explain(t, when, router.SalesIQEvent{}, view)
	if len(got) > maxExplainLines+1 || !strings.Contains(got[len(got)-1], "cut short") {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
}

func trialRuntime(t *testing.T) (*Runtime, *testkit.FakeFactory) {
	t.Helper()
	return mustLoad(t, testkit.TrialConfig, map[string]string{"TOK": testkit.TrialToken, "OPS_TOKEN": "ops-token-0123456789", "VIEW_TOKEN": "view-token-0123456789"})
}

func TestTrialRendersWithoutSending(t *testing.T) {
	rt, f := trialRuntime(t)
	res, err := rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: readEvent(t, "conversation-rated-sad.json")}, TrialOptions{Capture: &testkit.CaptureFactory{}})
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
	res, err := rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: readEvent(t, "conversation-rated-sad.json"), Send: true}, TrialOptions{})
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
		in   TrialInput
		want string
	}{
		{TrialInput{Source: "nope", Payload: []byte(`{}`)}, `no source "nope"`},
		{TrialInput{Payload: []byte(`{}`)}, "name a source: the config has siq, gen"},
		{TrialInput{Source: "siq", Payload: []byte(`{"entity": {}}`)}, "does not decode"},
		{TrialInput{Source: "gen", Payload: []byte(`{`)}, "does not decode"},
	} {
		_, err := rt.Trial(context.Background(), c.in, TrialOptions{})
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
	payload := readEvent(t, "conversation-rated-sad.json")
	res, err := rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: payload}, TrialOptions{Capture: &securedFactory{}})
	if err != nil {
		t.Fatal(err)
	}
	// Rendered with a stand-in key, whose signature is not shown.
	if req := res.Routes[0].Request; req == nil || req.Headers["X-Siqsignature"] != signatureShown {
		t.Errorf("rendered request of a secured sink: %+v (error %q)", req, res.Routes[0].Error)
	}
	// Sent only with the router's key.
	live := map[string]*SinkRuntime{}
	for name, sr := range rt.Sinks {
		c := *sr
		c.Sink = &securedSink{testkit.TokenSink{Client: &http.Client{Transport: testkit.RecordingTransport{}}}}
		live[name] = &c
	}
	res, err = rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: payload, Send: true}, TrialOptions{Sinks: live})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Routes[0].Result; r == nil || !strings.Contains(r.Error, "run this trial through the admin API") {
		t.Errorf("send to a secured sink without keys: %+v", r)
	}
	res, err = rt.Trial(context.Background(), TrialInput{Source: "siq", Payload: payload, Send: true}, TrialOptions{Sinks: live,
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
