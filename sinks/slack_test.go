package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/hookroute/hookroute/router"
)

const testToken = "xoxb-1234-5678-abcdef"

// slackFake is a Slack Web API and incoming-webhook server written from
// Slack's documentation: chat.postMessage takes a form with the token in
// the Authorization header, answers HTTP 200 with ok true or false, and
// 429 with Retry-After when rate limited; a webhook answers "ok" or a
// plain-text error with a real status.
type slackFake struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
	raw   [][]byte
}

func newSlackFake(t *testing.T) *slackFake {
	f := &slackFake{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *slackFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.raw = append(f.raw, body)
	f.mu.Unlock()
	if hook, ok := strings.CutPrefix(r.URL.Path, "/services/T000/B000/"); ok {
		f.webhook(w, r, hook, body)
		return
	}
	if r.URL.Path != "/api/chat.postMessage" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		writeJSON(w, `{"ok":false,"error":"not_authed"}`)
		return
	}
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		writeJSON(w, `{"ok":false,"error":"invalid_form_data"}`)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Has("token") {
		writeJSON(w, `{"ok":false,"error":"invalid_arguments"}`) // the token belongs in the header
		return
	}
	f.mu.Lock()
	f.forms = append(f.forms, form)
	f.mu.Unlock()
	switch form.Get("channel") {
	case "C1", "#support":
		writeJSON(w, `{"ok":true,"channel":"C1","ts":"1700000000.000100","message":{"text":"x"}}`)
	case "C404":
		writeJSON(w, `{"ok":false,"error":"channel_not_found"}`)
	case "CSCOPE":
		writeJSON(w, `{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"channels:read"}`)
	case "CBUSY":
		writeJSON(w, `{"ok":false,"error":"ratelimited"}`)
	case "CNEW":
		writeJSON(w, `{"ok":false,"error":"some_future_error"}`)
	case "C500":
		http.Error(w, "<html>oops</html>", http.StatusInternalServerError)
	case "C429":
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case "C429X":
		w.WriteHeader(http.StatusTooManyRequests)
	default:
		writeJSON(w, `{"ok":false,"error":"channel_not_found"}`)
	}
}

func (f *slackFake) webhook(w http.ResponseWriter, r *http.Request, hook string, body []byte) {
	var msg map[string]any
	if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &msg) != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	switch hook {
	case "ok":
		_, _ = io.WriteString(w, "ok")
	case "missing":
		http.Error(w, "channel_not_found", http.StatusNotFound)
	case "archived":
		http.Error(w, "channel_is_archived", http.StatusGone)
	case "rollup":
		http.Error(w, "rollup_error", http.StatusInternalServerError)
	case "slow":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate_limited", http.StatusTooManyRequests)
	default:
		http.Error(w, "no_service", http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = io.WriteString(w, s)
}

func (f *slackFake) lastForm(t *testing.T) url.Values {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.forms) == 0 {
		t.Fatal("no chat.postMessage received")
	}
	return f.forms[len(f.forms)-1]
}

func (f *slackFake) lastRaw() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.raw) == 0 {
		return nil
	}
	return f.raw[len(f.raw)-1]
}

// formText shows a form body one decoded field a line, so that golden
// files can be read.
func formText(t *testing.T, raw []byte) []byte {
	t.Helper()
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(form))
	var b strings.Builder
	for _, k := range keys {
		for _, v := range form[k] {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	return []byte(b.String())
}

func (f *slackFake) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.raw)
}

var tokenEnv = map[string]string{"SLACK_BOT_TOKEN": testToken}

func botSink(t *testing.T, f *slackFake, extra string) router.Sink {
	t.Helper()
	return mustBuild(t, "slack", "token: ${SLACK_BOT_TOKEN}\nchannel: C1\napi_url: "+f.URL+"/api/\n"+extra, tokenEnv)
}

func hookSink(t *testing.T, f *slackFake, hook string) router.Sink {
	t.Helper()
	return mustBuild(t, "slack", "webhook_url: ${HOOK}", map[string]string{"HOOK": f.URL + "/services/T000/B000/" + hook})
}

func TestSlackPostMessage(t *testing.T) {
	f := newSlackFake(t)
	s := botSink(t, f, "username: hookroute\nicon_emoji: ':robot_face:'")
	res, err := s.Deliver(context.Background(), delivery(map[string]string{"text": "Sad chat from Ann: &lt;b&gt;"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.RemoteID != "1700000000.000100" {
		t.Errorf("result %+v", res)
	}
	golden(t, "slack/postmessage.golden", formText(t, f.lastRaw()))
}

func TestSlackBlocksThreadAndChannelOverride(t *testing.T) {
	f := newSlackFake(t)
	// api_url without its final '/' must work too.
	s := mustBuild(t, "slack", "token: ${SLACK_BOT_TOKEN}\nchannel: C404\napi_url: "+f.URL+"/api", tokenEnv)
	blocks := `[{"type":"header","text":{"type":"plain_text","text":"Sad chat"}},
	  {"type":"section","block_id":"b1","text":{"type":"mrkdwn","text":"*Ann*: too slow"},"future_field":{"kept":true}}]`
	res, err := s.Deliver(context.Background(), delivery(map[string]string{
		"text": "fallback", "blocks": blocks, "thread_ts": " 1699999999.000200 ", "channel": "#support",
	}))
	if err != nil || res.RemoteID == "" {
		t.Fatalf("Deliver: %v %+v", err, res)
	}
	form := f.lastForm(t)
	if form.Get("channel") != "#support" || form.Get("thread_ts") != "1699999999.000200" {
		t.Errorf("form %v", form)
	}
	if !strings.Contains(form.Get("blocks"), `"future_field":{"kept":true}`) {
		t.Errorf("blocks lost a field: %s", form.Get("blocks"))
	}
	golden(t, "slack/postmessage_blocks.golden", formText(t, f.lastRaw()))
}

func TestSlackLimits(t *testing.T) {
	f := newSlackFake(t)
	s := botSink(t, f, "")
	var b strings.Builder
	b.WriteString("[")
	for i := range 60 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"type":"divider","block_id":"d%d"}`, i)
	}
	b.WriteString("]")
	if _, err := s.Deliver(context.Background(), delivery(map[string]string{"text": strings.Repeat("ä", 5000), "blocks": b.String()})); err != nil {
		t.Fatal(err)
	}
	form := f.lastForm(t)
	text := form.Get("text")
	if utf8.RuneCountInString(text) != slackMaxText || !strings.HasSuffix(text, "…") {
		t.Errorf("text is %d runes, ends %q", utf8.RuneCountInString(text), text[len(text)-6:])
	}
	var sent []map[string]any
	if err := json.Unmarshal([]byte(form.Get("blocks")), &sent); err != nil || len(sent) != slackMaxBlock {
		t.Errorf("%d blocks sent (%v), want %d", len(sent), err, slackMaxBlock)
	}
}

func TestSlackBadMessagesArePermanent(t *testing.T) {
	f := newSlackFake(t)
	s := botSink(t, f, "")
	for _, fields := range []map[string]string{
		{"text": "x", "blocks": `[{"type":"section",]`},
		{"text": "x", "blocks": `{"type":"section"}`},
		{"text": "x", "blocks": `[{"text":"no type"}]`},
		{"text": "x", "blocks": `["divider"]`},
		{"text": " \n"},
	} {
		_, err := s.Deliver(context.Background(), delivery(fields))
		if !router.IsPermanent(err) {
			t.Errorf("%v: got %v, want a permanent error", fields, err)
		}
	}
	if n := f.requests(); n != 0 {
		t.Errorf("%d requests sent for messages that cannot work", n)
	}
}

func TestSlackErrors(t *testing.T) {
	f := newSlackFake(t)
	tests := []struct {
		channel   string
		code      int
		permanent bool
		after     time.Duration
		text      string
	}{
		{"C404", 200, true, 0, "channel_not_found"},
		{"CSCOPE", 200, true, 0, "needs scope chat:write"},
		{"CNEW", 200, true, 0, "some_future_error"},
		{"CBUSY", 200, false, 0, "ratelimited"},
		{"C500", 500, false, 0, "500"},
		{"C429", 429, false, time.Second, "rate limited"},
		{"C429X", 429, false, 0, "429"},
	}
	for _, tt := range tests {
		t.Run(tt.channel, func(t *testing.T) {
			s := botSink(t, f, "")
			res, err := s.Deliver(context.Background(), delivery(map[string]string{"text": "hi", "channel": tt.channel}))
			if err == nil || router.IsPermanent(err) != tt.permanent {
				t.Fatalf("got %v, want permanent=%v", err, tt.permanent)
			}
			if res.StatusCode != tt.code || router.RetryAfterOf(err) != tt.after || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got status %d, retry after %v, %q; want %d, %v, %q", res.StatusCode, router.RetryAfterOf(err), err, tt.code, tt.after, tt.text)
			}
		})
	}
	// A wrong token is permanent and never printed.
	s := mustBuild(t, "slack", "token: ${T}\nchannel: C1\napi_url: "+f.URL+"/api/", map[string]string{"T": "xoxb-wrong-token"})
	_, err := s.Deliver(context.Background(), delivery(map[string]string{"text": "hi"}))
	if !router.IsPermanent(err) || !strings.Contains(err.Error(), "not_authed") || strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("wrong token: %v", err)
	}
}

func TestSlackWebhook(t *testing.T) {
	f := newSlackFake(t)
	res, err := hookSink(t, f, "ok").Deliver(context.Background(), delivery(map[string]string{
		"text": "Sad chat", "thread_ts": "1699999999.000200",
		"blocks": `[{"type":"section","text":{"type":"mrkdwn","text":"*Ann*"}}]`,
	}))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("Deliver: %v %+v", err, res)
	}
	golden(t, "slack/webhook.golden", f.lastRaw())

	tests := []struct {
		hook, reason string
		code         int
		permanent    bool
		after        time.Duration
	}{
		{"missing", "channel_not_found", 404, true, 0},
		{"archived", "channel_is_archived", 410, true, 0},
		{"rollup", "rollup_error", 500, false, 0},
		{"slow", "rate_limited", 429, false, time.Second},
	}
	for _, tt := range tests {
		res, err := hookSink(t, f, tt.hook).Deliver(context.Background(), delivery(map[string]string{"text": "hi"}))
		if err == nil || router.IsPermanent(err) != tt.permanent || res.StatusCode != tt.code || router.RetryAfterOf(err) != tt.after {
			t.Errorf("%s: got %d, %v (after %v)", tt.hook, res.StatusCode, err, router.RetryAfterOf(err))
			continue
		}
		// Slack's reason helps a human; the URL is a credential.
		if !strings.Contains(err.Error(), tt.reason) || strings.Contains(err.Error(), "B000") {
			t.Errorf("%s: error %q", tt.hook, err)
		}
	}
}

func TestSlackEscapes(t *testing.T) {
	specs, _ := testRegistry().RouteFields("slack")
	esc := map[string]func(string) string{}
	for _, s := range specs {
		esc[s.Name] = s.Escape
	}
	if got := esc["text"](`<!channel> & <http://x|y>`); got != `&lt;!channel&gt; &amp; &lt;http://x|y&gt;` {
		t.Errorf("text escape: %s", got)
	}
	if got := esc["blocks"]("\"a\" <b>\n"); got != `\"a\" &lt;b&gt;\n` {
		t.Errorf("blocks escape: %s", got)
	}
	if esc["thread_ts"] != nil || esc["channel"] != nil {
		t.Error("thread_ts and channel take no escaping")
	}
}

func TestSlackConfig(t *testing.T) {
	env := map[string]string{"T": testToken, "H": "https://hooks.slack.com/services/T0/B0/x", "BAD": "xoxb-a b"}
	tests := []struct{ snippet, path, msg string }{
		{"channel: C1", "token", "exactly one"},
		{"token: ${T}\nwebhook_url: ${H}", "token", "exactly one"},
		{"token: ${T}", "channel", "must be set"},
		{"token: ${T}\nchannel: C1\napi_url: ftp://x/", "api_url", "http or https"},
		{"token: ${T}\nchannel: C1\nrate: 0", "rate", "more than 0"},
		{"token: ${BAD}\nchannel: C1", "token", "spaces"},
		{"webhook_url: ${H}\nchannel: C1", "channel", "remove channel"},
		{"webhook_url: ${H}\napi_url: https://slack.com/api/", "api_url", "token only"},
		{"token: xoxb-written-in-the-file\nchannel: C1", "token", "by reference"},
		{"token: ${T}\nchannel: C1\nretries: 3", "retries", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "slack", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
	}
	s := mustBuild(t, "slack", "token: ${T}\nchannel: C1\napi_url: http://127.0.0.1:9/api", env).(*slackSink)
	if s.conf.APIURL != "http://127.0.0.1:9/api/" {
		t.Errorf("api_url %q: the final '/' was not added", s.conf.APIURL)
	}
}

func TestSlackSharesLimiterPerChannel(t *testing.T) {
	env := map[string]string{"T": testToken, "T2": "xoxb-other", "H": "https://hooks.slack.com/services/T0/B0/x"}
	r := testRegistry()
	limiter := func(snippet string) *rate.Limiter {
		t.Helper()
		s, err := r.Build("slack", "s", node(t, snippet, env))
		if err != nil {
			t.Fatal(err)
		}
		return s.(*slackSink).Limiter()
	}
	a := limiter("token: ${T}\nchannel: C1")
	if b := limiter("token: ${T}\nchannel: C1\nusername: other"); a != b {
		t.Error("two sinks posting to one channel have two limiters")
	}
	if c := limiter("token: ${T}\nchannel: C2"); a == c {
		t.Error("two channels share a limiter")
	}
	if d := limiter("token: ${T2}\nchannel: C1"); a == d {
		t.Error("two workspaces' tokens share a limiter")
	}
	h := limiter("webhook_url: ${H}")
	if h2 := limiter("webhook_url: ${H}\nusername: x"); h != h2 || h == a {
		t.Error("webhook limiters are not per webhook")
	}
	if a.Limit() != 1 || a.Burst() != slackBurst {
		t.Errorf("limit %v burst %d", a.Limit(), a.Burst())
	}
	if l := limiter("token: ${T}\nchannel: C9\nrate: 0.5"); l.Limit() != 0.5 {
		t.Errorf("rate 0.5: limit %v", l.Limit())
	}
	// A reload that changes the rate builds again with the same Registry.
	if l := limiter("token: ${T}\nchannel: C9\nrate: 2"); l.Limit() != 2 {
		t.Errorf("after a reload to rate 2: limit %v", l.Limit())
	}
}

func TestSlackFollowUpRepliesInThread(t *testing.T) {
	f := newSlackFake(t)
	s := botSink(t, f, "")
	d := delivery(map[string]string{"text": "second sad rating"})
	d.DedupKey, d.RemoteID = "chat-1", "1699999999.000200"
	res, err := s.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.lastForm(t).Get("thread_ts"); got != "1699999999.000200" {
		t.Errorf("thread_ts = %q, want the first message's ts", got)
	}
	if res.RemoteID != "1699999999.000200" {
		t.Errorf("RemoteID = %q, want the thread's ts kept", res.RemoteID)
	}
}

// TestSlackPacesRouteChannels: a route that posts to another channel than
// its sink's waits for that channel's budget, which it shares with every
// sink posting there; a "#name" shares its channel id's once a post has
// shown the id; and a wait that would outlast the attempt is not begun.
func TestSlackPacesRouteChannels(t *testing.T) {
	f := newSlackFake(t)
	r := testRegistry()
	build := func(channel, extra string) *slackSink {
		t.Helper()
		s, err := r.Build("slack", "s", node(t, "token: ${SLACK_BOT_TOKEN}\nchannel: \""+channel+"\"\napi_url: "+f.URL+"/api/\n"+extra, tokenEnv))
		if err != nil {
			t.Fatal(err)
		}
		return s.(*slackSink)
	}
	named := build("#support", "rate: 0.001") // C1 in the fake
	byID := build("C1", "rate: 0.001")
	if named.Limiter() == byID.Limiter() {
		t.Fatal("#support and C1 share a limiter before any post showed they are one channel")
	}
	if _, err := named.Deliver(context.Background(), delivery(map[string]string{"text": "hi"})); err != nil {
		t.Fatal(err)
	}
	if named.Limiter() != byID.Limiter() {
		t.Error("#support still has a limiter of its own after Slack answered that it is C1")
	}

	// A route of a sink on another channel, posting to C1: C1's budget
	// (burst 3, one message in 1000 s) pays for it.
	other := build("C404", "rate: 0.001")
	route := delivery(map[string]string{"text": "routed", "channel": "C1"})
	before := byID.Limiter().Tokens()
	if _, err := other.Deliver(context.Background(), route); err != nil {
		t.Fatal(err)
	}
	if got := byID.Limiter().Tokens(); got > before-0.99 {
		t.Errorf("C1 has %.2f tokens after a routed post, had %.2f: the route was not paced by its channel", got, before)
	}
	if other.Limiter().Tokens() != slackBurst {
		t.Errorf("the sink's own channel (C404) paid for a post to C1: %.2f tokens left", other.Limiter().Tokens())
	}
	// The burst is spent: the next routed post would wait 1000 s, far
	// past its attempt's timeout, so it is not begun but retried later.
	for byID.Limiter().Tokens() >= 1 {
		byID.Limiter().Allow()
	}
	n := f.requests()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := other.Deliver(ctx, route)
	var ra *router.RetryAfterError
	if !errors.As(err, &ra) || ra.After < 900*time.Second || router.IsPermanent(err) {
		t.Errorf("routed post over the channel's budget: %v, want a retry after about 1000 s", err)
	}
	if f.requests() != n {
		t.Error("the post over budget was sent")
	}
	// The sink's own channel, named another way, is not waited for twice.
	self := delivery(map[string]string{"text": "self", "channel": "#support"})
	if _, err := byID.Deliver(ctx, self); err != nil {
		t.Errorf("a route naming the sink's own channel by name: %v", err)
	}
}
