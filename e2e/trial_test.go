package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

const trialCanary = "xoxb-TRIAL-CANARY-0a1b2c3d"

// TestTrialCLIExplains runs `hookroute trial` on the example config: a
// sad rating matches sad-chat and shows what each sink would receive
// (Slack's token redacted, nothing sent), and a happy one explains why
// sad-chat does not match.
func TestTrialCLIExplains(t *testing.T) {
	env := map[string]string{"SLACK_BOT_TOKEN": trialCanary}
	code, out, errs := runCLI(t, env, "trial", "-c", "rules.example.yaml", "--event", "examples/events/conversation-rated-sad.json")
	if code != 0 {
		t.Fatalf("trial sad: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"event conversation.rated from source salesiq, id conversation.rated:40526000001808033:1567065865617",
		"  match     sad-chat\n",
		"  no match  missed-chat\n",
		`event == "conversation.missed" → "conversation.rated" == "conversation.missed" → false`,
		"routes (rendered, not sent; --send delivers them):",
		"  sad-chat → support-slack (slack)\n      dedup_key: salesiq-chat-40526000001808033 (a trial never records it)\n" +
			"      would: post the conversation's root message, then reply in the root's thread (no store was asked: the key is taken as new)\n" +
			"      POST https://slack.com/api/chat.postMessage\n      Authorization: <redacted>\n",
		"text=%3Adisappointed%3A+Sad+chat%3A+Tricia+with+Patricia.+Ticket%3A+none+yet",
		"  sad-chat → console (log)\n      text: sad rating from Tricia: Nobody answered my question about the refund\n",
		"  sad-chat → audit (http)\n      not delivered: the sink is switched off",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trial sad output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errs, trialCanary) {
		t.Errorf("the Slack token is in the output:\n%s%s", out, errs)
	}

	code, out, errs = runCLI(t, env, "trial", "-c", "rules.example.yaml", "--event", "examples/events/conversation-rated-happy.json")
	if code != 0 {
		t.Fatalf("trial happy: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"  no match  sad-chat\n" +
			`              event == "conversation.rated" → "conversation.rated" == "conversation.rated" → true` + "\n" +
			`              chat.rating == "sad" → "happy" == "sad" → false` + "\n" +
			`              event == "conversation.rated" && chat.rating == "sad" → false: the left side is true, so the right side (false) decides` + "\n",
		"routes: none (no rule matched)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trial happy output lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = runCLI(t, nil, "trial", "-c", "rules.example.yaml", "--json", "--event", "examples/events/conversation-rated-happy.json")
	var res struct {
		Rules []struct {
			Name        string
			Matched     bool
			Explanation []string
		}
		Routes []any
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Rules) != 3 || res.Rules[0].Matched || len(res.Routes) != 0 {
		t.Fatalf("trial --json: exit %d\n%s%s", code, out, errs)
	}
	if got := res.Rules[0].Explanation[1]; got != `chat.rating == "sad" → "happy" == "sad" → false` {
		t.Errorf("trial --json explanation %q", got)
	}

	if code, _, errs := runCLI(t, nil, "trial", "-c", "rules.example.yaml", "--event", "README.md"); code != 1 || !strings.Contains(errs, "not JSON") {
		t.Errorf("trial on a non-JSON file: exit %d, %s", code, errs)
	}
}

// TestRuleTestCLI runs `hookroute test`: a passing file, a failing one
// whose output shows got and want, and check reporting a failing tests:
// section of the config.
func TestRuleTestCLI(t *testing.T) {
	dir := t.TempDir()
	events, err := filepath.Abs("../examples/events")
	if err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(dir, "pass.yaml")
	writeFile(t, pass, `
tests:
  - name: sad rating goes to the console and the helpdesk
    source: salesiq
    event_file: `+events+`/conversation-rated-sad.json
    expect:
      match: [sad-chat]
      no_match: [missed-chat]
      routes:
        - {rule: sad-chat, sink: console, contains: {text: "Tricia"}}
        - {rule: sad-chat, sink: helpdesk, contains: {dedup_key: "salesiq-chat-40526000001808033"}}
  - name: a missed chat is not a sad one
    event_file: `+events+`/conversation-missed.json
    expect:
      match: [missed-chat]
      no_match: [sad-chat]
`)
	code, out, errs := runCLI(t, nil, "test", pass, "-c", "rules.example.yaml")
	if code != 0 || !strings.Contains(out, "ok      sad rating goes to the console and the helpdesk") || !strings.HasSuffix(out, "\n2 passed, 0 failed\n") {
		t.Fatalf("test pass.yaml: exit %d\n%s%s", code, out, errs)
	}

	fail := filepath.Join(dir, "fail.yaml")
	writeFile(t, fail, `
tests:
  - name: a happy rating does not reach the helpdesk
    event_file: `+events+`/conversation-rated-happy.json
    expect:
      no_routes: [{sink: helpdesk}]
  - name: sad rating names the visitor
    event_file: `+events+`/conversation-rated-sad.json
    expect:
      routes:
        - {rule: sad-chat, sink: console, contains: {text: "Kim"}}
  - name: happy rating wrongly expected to be sad
    event_file: `+events+`/conversation-rated-happy.json
    expect:
      match: [sad-chat]
`)
	code, out, errs = runCLI(t, nil, "test", "-c", "rules.example.yaml", fail)
	if code != 1 {
		t.Fatalf("test fail.yaml: exit %d, want 1\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"ok      a happy rating does not reach the helpdesk (" + fail + ":3:5)\n",
		"FAIL    sad rating names the visitor (" + fail + ":7:5)\n" +
			"        route sad-chat → console: field text does not contain what the test wants\n" +
			`            want substring: "Kim"` + "\n" +
			`            got:            "sad rating from Tricia: Nobody answered my question about the refund"` + "\n",
		"FAIL    happy rating wrongly expected to be sad (" + fail + ":12:5)\n" +
			"        matched rules:\n" +
			"            want: sad-chat\n" +
			"            got:  (none)\n" +
			"        rule sad-chat: want match, got no match\n" +
			`            event == "conversation.rated" → "conversation.rated" == "conversation.rated" → true` + "\n" +
			`            chat.rating == "sad" → "happy" == "sad" → false` + "\n",
		"\n1 passed, 2 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("test fail.yaml output lacks\n%s\n--- output:\n%s", want, out)
		}
	}

	// The config's own tests: section runs with check (and with test and
	// no files).
	cfg := filepath.Join(dir, "rules.yaml")
	writeFile(t, cfg, `
sources:
  - {name: shop, type: none, event: kind}
sinks:
  - {name: console, type: log}
rules:
  - name: big-orders
    when: kind == "order.created" && total >= 1000
    to:
      - {sink: console, text: "big order {{ .order_id }}"}
tests:
  - name: a small order is not big
    event: {kind: order.created, order_id: A-1, total: 20}
    expect: {no_match: [big-orders]}
  - name: a big order is
    event: {kind: order.created, order_id: A-2, total: 5000}
    expect:
      match: [big-orders]
      routes: [{sink: console, contains: {text: "big order A-2"}}]
`)
	if code, out, errs := runCLI(t, nil, "test", "-c", cfg); code != 0 || !strings.HasSuffix(out, "\n2 passed, 0 failed\n") {
		t.Errorf("test with the config's tests: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, nil, "check", "-c", cfg); code != 0 {
		t.Errorf("check with passing tests: exit %d\n%s%s", code, out, errs)
	}
	b, _ := os.ReadFile(cfg)
	writeFile(t, cfg, strings.Replace(string(b), "total >= 1000", "total >= 10", 1))
	code, out, errs = runCLI(t, nil, "check", "-c", cfg)
	want := cfg + `:12:5: tests[0]: test "a small order is not big" failed: rule big-orders: want no match, got match; kind == "order.created" → "order.created" == "order.created" → true; total >= 10 → 20 >= 10 → true;`
	if code != 1 || !strings.Contains(out+errs, want) {
		t.Errorf("check with a failing test: exit %d, want 1 and\n%s\n--- got:\n%s%s", code, want, out, errs)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// trialSink records what reaches it.
type trialSink struct {
	mu   sync.Mutex
	keys []string
	body [][]byte
}

func (s *trialSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.keys, s.body = append(s.keys, r.Header.Get("Idempotency-Key")), append(s.body, b)
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (s *trialSink) received() ([]string, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...), append([][]byte(nil), s.body...)
}

const trialAPIConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fake sink listens on loopback
admin:
  tokens:
    - {name: ops, token: "${TEST_ADMIN_TOKEN}", scopes: [read, trial]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: audit
    type: http
    url: ${TEST_HTTP_URL}
    headers: {X-Api-Key: "${TEST_API_KEY}"}
rules:
  - name: sad-chat
    when: chat.rating == "sad"
    to:
      - sink: audit
        body: '{"text": "{{ .visitor.name }} is sad"}'
        dedup_key: "chat-{{ .chat.id }}"
`

// TestTrialAPISendLeavesNoTrace drives POST /api/trial on a running
// router: without send the request is rendered and nothing reaches the
// sink; with send it reaches the sink once, and neither run leaves an
// event, a delivery or a dedup record in the store.
func TestTrialAPISendLeavesNoTrace(t *testing.T) {
	sink := &trialSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	const token, apiKey = "ops-token-0123456789abcdef", "api-key-TRIAL-CANARY-77"
	p := startRouter(t, t.TempDir(), trialAPIConfig, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL + "/hook",
		"TEST_ADMIN_TOKEN=" + token, "TEST_API_KEY=" + apiKey,
	})
	api := func(method, path string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "http://"+p.admin+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	type result struct {
		Source    string
		EventName string `json:"event_name"`
		Send      bool
		Rules     []struct {
			Name        string
			Matched     bool
			Explanation []string
		}
		Routes []struct {
			Rule, Sink, Kind, Error string
			DedupKey                string `json:"dedup_key"`
			Request                 *struct {
				Method, URL, Body string
				Headers           map[string]string
			}
			Fields map[string]string
			Result *struct {
				StatusCode int    `json:"status_code"`
				RemoteID   string `json:"remote_id"`
				Error      string
			}
		}
	}
	event := json.RawMessage(salesiqEvent("trial-1", "sad", "too slow", 1))

	code, b := api("POST", "/api/trial", map[string]any{"source": "salesiq", "event": event, "send": false})
	var res result
	if code != 200 || json.Unmarshal(b, &res) != nil || len(res.Routes) != 1 {
		t.Fatalf("trial: %d %s", code, b)
	}
	r := res.Routes[0]
	if r.Request == nil || r.Request.Method != "POST" || r.Request.URL != "<redacted>" || r.Request.Headers["X-Api-Key"] != "<redacted>" ||
		r.Request.Body != `{"text": "Tricia is sad"}` || !strings.HasPrefix(r.Request.Headers["Idempotency-Key"], "trial-") || r.Result != nil {
		t.Errorf("rendered route: %s", b)
	}
	if r.DedupKey != "chat-trial-1" {
		t.Errorf("dedup key %q", r.DedupKey)
	}
	if keys, _ := sink.received(); len(keys) != 0 {
		t.Fatalf("a trial without send reached the sink %d times", len(keys))
	}

	code, b = api("POST", "/api/trial", map[string]any{"source": "salesiq", "event": event, "send": true})
	res = result{}
	if code != 200 || json.Unmarshal(b, &res) != nil || !res.Send || len(res.Routes) != 1 {
		t.Fatalf("trial send: %d %s", code, b)
	}
	if got := res.Routes[0].Result; got == nil || got.StatusCode != 202 || got.Error != "" {
		t.Errorf("send result: %s", b)
	}
	keys, bodies := sink.received()
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "trial-") || string(bodies[0]) != `{"text": "Tricia is sad"}` {
		t.Fatalf("the sink received %q %q, want one trial delivery", keys, bodies)
	}
	for _, q := range []string{`SELECT count(*) FROM events`, `SELECT count(*) FROM deliveries`, `SELECT count(*) FROM attempts`, `SELECT count(*) FROM remote_objects`} {
		if n := p.query(q); n != 0 {
			t.Errorf("%s = %d after trials, want 0", q, n)
		}
	}

	// A happy event: sad-chat explained, nothing to route.
	code, b = api("POST", "/api/trial", map[string]any{"source": "salesiq", "event": json.RawMessage(salesiqEvent("trial-2", "3", "", 1)), "send": true})
	res = result{}
	if code != 200 || json.Unmarshal(b, &res) != nil || len(res.Routes) != 0 || res.Rules[0].Matched ||
		strings.Join(res.Rules[0].Explanation, "|") != `chat.rating == "sad" → "happy" == "sad" → false` {
		t.Errorf("happy trial: %d %s", code, b)
	}
	if code, b := api("POST", "/api/trial", map[string]any{"source": "nope", "event": event}); code != 400 {
		t.Errorf("unknown source: %d %s", code, b)
	}

	// Samples: the embedded ones, then, once traffic arrived, the latest
	// real event of its name.
	if code, body := p.post("/hooks/salesiq", salesiqEvent("real-1", "happy", "fine", 1), e2eKey); code != 202 {
		t.Fatalf("ingest: %d %s", code, body)
	}
	code, b = api("GET", "/api/trial/samples", nil)
	var samples struct {
		Items []struct {
			Source, Type, Event, Label string
			Payload                    map[string]any
			Real                       bool
		}
	}
	if code != 200 || json.Unmarshal(b, &samples) != nil {
		t.Fatalf("samples: %d %s", code, b)
	}
	var labels []string
	for _, it := range samples.Items {
		if it.Source == "salesiq" && it.Type == "salesiq" && it.Event == "conversation.rated" {
			labels = append(labels, it.Label)
		}
		if it.Real && (it.Event != "conversation.rated" || it.Payload["entity_id"] != "real-1") {
			t.Errorf("real sample %+v", it)
		}
	}
	sort.Strings(labels)
	if len(labels) != 4 || labels[0] != "conversation rated happy" || !strings.HasPrefix(labels[3], "latest real conversation.rated") {
		t.Errorf("conversation.rated samples %q", labels)
	}
	if strings.Contains(p.logs.String(), apiKey) {
		t.Errorf("the sink's API key is in the router's logs")
	}
}
