package trial

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router/rules"

	"github.com/hookroute/hookroute/internal/testkit"
)

// writeTests writes a test file, with the test events beside it.
func writeTests(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"conversation-rated-sad.json", "conversation-rated-happy.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), testkit.ReadEvent(t, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "tests.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runTests(t *testing.T, rt *rules.Runtime, body string) []TestResult {
	t.Helper()
	tests, err := LoadTestFile(writeTests(t, body))
	if err != nil {
		t.Fatalf("load tests: %v", err)
	}
	return RunTests(context.Background(), rt, tests)
}

func TestRuleTestsPass(t *testing.T) {
	rt, _ := trialRuntime(t)
	res := runTests(t, rt, `
tests:
  - name: sad rating goes out
    source: siq
    event_file: conversation-rated-sad.json
    expect:
      match: [sad-chat]
      no_match: [missed-chat]
      routes:
        - {rule: sad-chat, sink: out, contains: {text: "Tricia", dedup_key: "chat-40526000001808033"}}
        - {sink: off}   # switched off, but the rule routes there: made, as far as tests go
  - name: happy rating stays quiet
    source: siq
    event_file: conversation-rated-happy.json
    expect:
      no_match: [sad-chat, missed-chat]
      no_routes: [{sink: out}]
  - name: inline event, app_id exact
    source: gen
    event:
      kind: order.created
      app_id: 40526000000002041
    expect:
      match: [orders]
      routes: [{sink: log, contains: {text: order}}]
`)
	for _, r := range res {
		if !r.Passed() {
			t.Errorf("%s failed:\n%s", r.Test.Name, strings.Join(r.Failures, "\n"))
		}
	}
	if len(res) != 3 {
		t.Errorf("%d results, want 3", len(res))
	}
}

func TestRuleTestFailuresSayWhatAndWhy(t *testing.T) {
	rt, _ := trialRuntime(t)
	res := runTests(t, rt, `
tests:
  - name: happy rating wrongly expected sad
    source: siq
    event_file: conversation-rated-happy.json
    expect:
      match: [sad-chat]
      no_match: [missed-chat]
      routes:
        - {rule: sad-chat, sink: out}
  - name: wrong text
    source: siq
    event_file: conversation-rated-sad.json
    expect:
      routes:
        - {rule: sad-chat, sink: out, contains: {text: "Kim", subject: "x"}}
        - {rule: sad-chat, sink: nope}
        - {rule: missed-chat, sink: log}
      no_routes: [{rule: sad-chat, sink: out}]
      match: [nosuch]
`)
	wantMatched := []string{"want: sad-chat   (and not: missed-chat)\ngot:  (none)", "want: nosuch\ngot:  sad-chat"}
	want := [][]string{
		{
			"rule sad-chat: want match, got no match\n" +
				`    event == "conversation.rated" → "conversation.rated" == "conversation.rated" → true` + "\n" +
				`    chat.rating == "sad" → "happy" == "sad" → false` + "\n" +
				`    event == "conversation.rated" && chat.rating == "sad" → false: the left side is true, so the right side (false) decides`,
			"route sad-chat → out: not made, since rule sad-chat did not match",
		},
		{
			"rule nosuch: no such rule in the config (rules: sad-chat, missed-chat, orders)",
			"route sad-chat → out: field subject is not set (it sets: text, dedup_key)",
			"route sad-chat → out: field text does not contain what the test wants\n" +
				`    want substring: "Kim"` + "\n" +
				`    got:            "[Tricia] is sad: [Nobody answered my question about the refund]"`,
			`route sad-chat → nope: no sink "nope" in the config`,
			"rule missed-chat: did not match, so route missed-chat → log was not made\n" +
				`    event == "conversation.missed" → "conversation.rated" == "conversation.missed" → false`,
			"route sad-chat → out: want no route, got one",
		},
	}
	for i, r := range res {
		if r.Matched != wantMatched[i] {
			t.Errorf("%s: matched\n%s\nwant\n%s", r.Test.Name, r.Matched, wantMatched[i])
		}
		got := r.Failures
		if strings.Join(got, "\n--\n") != strings.Join(want[i], "\n--\n") {
			t.Errorf("%s: failures\n%s\n\nwant\n%s", r.Test.Name, strings.Join(got, "\n--\n"), strings.Join(want[i], "\n--\n"))
		}
	}
}

func TestRuleTestFileErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"tests:\n  - name: a\n    event_file: conversation-rated-sad.json\n    expct: {match: [x]}\n", `tests.yaml:4:5: tests[0].expct: unknown key "expct"`},
		{"tests:\n  - name: a\n    event_file: missing.json\n    expect: {match: [x]}\n", "tests.yaml:3:17: tests[0].event_file: open"},
		{"tests:\n  - name: a\n    event: {x: 1}\n    event_file: conversation-rated-sad.json\n    expect: {match: [x]}\n", "tests[0].event: give event or event_file, not both"},
		{"tests:\n  - name: a\n    event: {x: 1}\n", "tests[0].expect: a test needs at least one expectation"},
		{"tests:\n  - name: a\n    event: {x: 1}\n    expect: {routes: [{rule: r}]}\n", "tests[0].expect.routes[0].sink: a route expectation needs sink:"},
		{"tests:\n  - event: {x: 1}\n    expect: {match: [r]}\n", "tests[0].name: a test needs a name"},
		{"tests:\n  - name: a\n    event: '{not json'\n    expect: {match: [r]}\n", "a string event must be JSON text"},
		{"rules: []\n", `unknown key "rules"`},
		{"tests: []\n", "no tests in the file"},
	} {
		_, err := LoadTestFile(writeTests(t, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.body, err, c.want)
		}
	}
}

func TestInlineEventsKeepNumbersExact(t *testing.T) {
	tests, err := LoadTestFile(writeTests(t, `
tests:
  - name: a
    event:
      big: 40526000000002040
      huge: 123456789012345678901234567890
      f: 1.5
      hex: 0x1F
      yes: true
      nothing: null
      list: [1, "two", {three: 3}]
      text: "10"
    expect: {match: [x]}
  - name: b
    event: |
      {"raw": 40526000000002040}
    expect: {match: [x]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(tests[0].payload), `{"big":40526000000002040,"huge":123456789012345678901234567890,"f":1.5,"hex":31,"yes":true,"nothing":null,"list":[1,"two",{"three":3}],"text":"10"}`; got != want {
		t.Errorf("inline event\n got %s\nwant %s", got, want)
	}
	if got := strings.TrimSpace(string(tests[1].payload)); got != `{"raw": 40526000000002040}` {
		t.Errorf("JSON text event %s", got)
	}
}

// configWithTests is testkit.TrialConfig with its own tests: section.
func configWithTests(tests string) string { return testkit.TrialConfig + "tests:\n" + tests }

func TestConfigTestsRunAtLoad(t *testing.T) {
	env := map[string]string{"TOK": testkit.TrialToken, "OPS_TOKEN": "ops-token-0123456789", "VIEW_TOKEN": "view-token-0123456789"}
	rt, _ := mustLoad(t, configWithTests(`
  - name: orders go to the log
    source: gen
    event: {kind: order.created}
    expect: {match: [orders], routes: [{sink: log, contains: {text: order}}]}
`), env)
	if tests, err := ConfigTests(rt); err != nil || len(tests) != 1 {
		t.Errorf("ConfigTests: %d, %v", len(tests), err)
	}

	msg := loadErr(t, configWithTests(`
  - name: orders go nowhere
    source: gen
    event: {kind: order.created}
    expect: {no_match: [orders]}
`), env)
	want := `rules.yaml:50:5: tests[0]: test "orders go nowhere" failed: rule orders: want no match, got match; kind == "order.created" → "order.created" == "order.created" → true`
	if !strings.Contains(msg, want) {
		t.Errorf("load error:\n%s\nwant it to contain\n%s", msg, want)
	}

	// A config broken elsewhere does not run its tests: they would fail
	// for the wrong reason.
	broken := strings.Replace(configWithTests(`
  - name: orders go nowhere
    source: gen
    event: {kind: order.created}
    expect: {no_match: [orders]}
`), `when: kind == "order.created"`, `when: kind ==`, 1)
	msg = loadErr(t, broken, env)
	if strings.Contains(msg, "tests[0]") || !strings.Contains(msg, "rules[2].when") {
		t.Errorf("load error of a broken config:\n%s", msg)
	}

	// Test entries are checked strictly, with positions.
	msg = loadErr(t, configWithTests("  - name: x\n    evnt: {}\n"), env)
	if !strings.Contains(msg, `tests[0].evnt: unknown key "evnt"`) {
		t.Errorf("load error:\n%s", msg)
	}
}

// TestRuleTestOutcomes: a test pins its time with at: and asserts what a
// route's delivery comes to: deferred outside its schedule, sent inside
// it, suppressed with when_closed: drop, grouped for a grouped rule; a
// wrong outcome says what it was and why.
func TestRuleTestOutcomes(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, `text: "{{ .visitor.name }}"`, `text: "{{ .visitor.name }}"`+"\n        during: business\n      - {sink: out, text: x, during: business, when_closed: drop}", 1) +
		"schedules:\n  - {name: business, timezone: Europe/Berlin, weekly: ['mon-fri 09:00-18:00']}\n"
	src = strings.Replace(src, `    when: chat.rating == "sad"`, "    when: chat.rating == \"sad\"\n    group: {by: [visitor.email_id], wait: 30s, interval: 10m}", 1)
	rt, _ := mustLoad(t, src, nil)
	res := runTests(t, rt, `
tests:
  - name: on a Saturday
    source: siq
    event_file: conversation-rated-sad.json
    at: 2026-12-05T12:00:00Z
    expect:
      routes: [{sink: out, outcome: deferred}]
  - name: on a Monday
    source: siq
    event_file: conversation-rated-sad.json
    at: 2026-12-07T12:00:00Z
    expect:
      routes: [{sink: out, outcome: grouped}]
  - name: wrong
    source: siq
    event_file: conversation-rated-sad.json
    at: 2026-12-05T12:00:00Z
    expect:
      routes: [{sink: out, outcome: sent}]
`)
	if len(res) != 3 || !res[0].Passed() || !res[1].Passed() {
		t.Fatalf("results %+v", res)
	}
	if got := strings.Join(res[2].Failures, "\n"); !strings.Contains(got, "outcome deferred, want sent: deferred to Mon 2026-12-07 09:00 Europe/Berlin (during: business)") {
		t.Errorf("the wrong outcome's failure says:\n%s", got)
	}
	r, err := Run(context.Background(), rt, Input{Source: "siq", Payload: testkit.ReadEvent(t, "conversation-rated-sad.json")},
		Options{Now: func() time.Time { return time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if o := r.Routes[1]; o.Outcome != "suppressed" || !strings.Contains(o.Why, "when_closed: drop") {
		t.Errorf("the when_closed: drop route: %s (%s); want suppressed", o.Outcome, o.Why)
	}
	if o := r.Routes[0]; !strings.HasPrefix(o.Why, "deferred to Mon") {
		t.Errorf("deferred why %q", o.Why)
	}
}
