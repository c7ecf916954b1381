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

// timerConfig: a missed chat escalates to slack after 5 minutes and to
// pager after 30, unless the chat is attended first; the log hears of
// every missed chat at once.
const timerConfig = `
sources:
  - name: siq
    type: salesiq
    public_keys:
      - pem: ${PUBKEY}
  - name: gen
    type: none
    event: kind
sinks:
  - {name: slack, type: fake}
  - {name: pager, type: fake}
  - {name: log, type: fake}
rules:
  - name: missed-unanswered
    source: siq
    when: event == "conversation.missed"
    unless:
      when: event == "conversation.attender.updated"
      same: [entity_id]
      within: 30m
    to:
      - {sink: slack, text: "{{ .entity_id }} missed {{ .timer.waited }} ago, at {{ .timer.started_at }}", delay: 5m}
      - {sink: pager, text: "{{ .entity_id }} still unanswered at {{ .timer.due_at }}"}
  - name: missed-log
    source: siq
    when: event == "conversation.missed"
    to:
      - {sink: log, text: "missed {{ .entity_id }}"}
`

// missedChat is the chat of conversation-missed.json.
const missedChat = "40526000001808100"

// attended is a SalesIQ conversation.attender.updated event of chat.
func attended(chat string) []byte {
	return []byte(`{"entity_type":"conversation","event":"conversation.attender.updated","entity_id":"` + chat + `","org_id":"55778119","app_id":40526000000002040,"attempt":1,"version":"1","event_time":"1567066600000","entity":{"id":"` + chat + `"}}`)
}

// runSequenceTests runs a test file with missed.json (missedChat missed),
// attended.json (it attended) and other.json (another chat attended)
// beside it, on timerConfig.
func runSequenceTests(t *testing.T, body string) []TestResult {
	t.Helper()
	rt, _ := mustLoad(t, timerConfig, nil)
	tests, err := LoadTestFile(writeSequence(t, body))
	if err != nil {
		t.Fatalf("load tests: %v", err)
	}
	return RunTests(context.Background(), rt, tests)
}

func writeSequence(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"missed.json":   testkit.ReadEvent(t, "conversation-missed.json"),
		"attended.json": attended(missedChat),
		"other.json":    attended("40526000009999999"),
		"tests.yaml":    []byte(body),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "tests.yaml")
}

// TestSequenceTests runs events on a virtual clock. The case
// first: the slack step fires at 5 minutes, and the reply at 10 cancels
// the 30-minute pager step.
func TestSequenceTests(t *testing.T) {
	res := runSequenceTests(t, `
tests:
  - name: answered after 10 minutes escalates once
    source: siq
    at: 2026-12-07T10:00:00Z
    events:
      - {event_file: missed.json, at: 0s}
      - {event_file: attended.json, at: 10m}
    expect:
      fired:
        - {rule: missed-unanswered, sink: slack, at: 5m, contains: {text: "missed [5m0s] ago, at [2026-12-07 10:00:00 +0000 UTC]"}}
        - {rule: missed-log, sink: log, at: 0s, contains: {text: "missed [40526000001808100]"}}
      cancelled:
        - {rule: missed-unanswered, sink: pager, by: attended.json}
      not_fired:
        - {sink: pager}
        - {sink: slack, at: 10m}
  - name: answered after 3 minutes escalates never
    source: siq
    events:
      - {event_file: missed.json}
      - {event_file: attended.json, at: 3m}
    expect:
      cancelled:
        - {sink: slack, by: 1}
        - {sink: pager, by: attended.json}
      fired: [{sink: log}]
  - name: never answered goes all the way, on the fixed epoch
    source: siq
    events: [{event_file: missed.json}]
    expect:
      fired:
        - {sink: slack, at: 5m}
        - {sink: pager, at: 30m, contains: {text: "still unanswered at [2026-01-01 00:30:00 +0000 UTC]"}}
  - name: another chat attended cancels nothing
    source: siq
    events:
      - {event_file: missed.json}
      - {event_file: other.json, at: 1m}
    expect:
      fired: [{sink: slack, at: 5m}, {sink: pager, at: 30m}]
  - name: the reply may come from another source
    events:
      - {event_file: missed.json, source: siq}
      - event: {kind: conversation.attender.updated, entity_id: "40526000001808100"}
        source: gen
        at: 2m
    expect:
      cancelled: [{sink: slack, by: 1}, {sink: pager, by: 1}]
  - name: until stops the clock before the pager step
    source: siq
    events: [{event_file: missed.json}]
    until: 20m
    expect:
      fired: [{sink: slack, at: 5m}]
      not_fired: [{sink: pager}]
  - name: a step due as the reply comes has fired
    source: siq
    events:
      - {event_file: missed.json}
      - {event_file: attended.json, at: 5m}
    expect:
      fired: [{sink: slack, at: 5m}]
      cancelled: [{sink: pager, by: 1}]
  - name: a duplicate makes no second timer
    source: siq
    events:
      - {event_file: missed.json}
      - {event_file: missed.json, at: 1m}
    expect:
      fired: [{sink: slack, at: 5m}]
      not_fired: [{sink: slack, at: 6m}, {sink: log, at: 1m}]
`)
	if len(res) != 8 {
		t.Fatalf("%d results, want 8", len(res))
	}
	for _, r := range res {
		if !r.Passed() {
			t.Errorf("%s failed:\n%s", r.Test.Name, strings.Join(r.Failures, "\n"))
		}
	}
}

// TestSequenceFailuresSayWhatHappened: a failed expectation of a sequence
// says what became of the route's deliveries instead: fired when, or
// cancelled by which event, or still waiting; or why no rule made one.
func TestSequenceFailuresSayWhatHappened(t *testing.T) {
	res := runSequenceTests(t, `
tests:
  - name: wrong about an answered chat
    source: siq
    events:
      - {event_file: missed.json, at: 0s}
      - {event_file: attended.json, at: 10m}
    expect:
      fired:
        - {rule: missed-unanswered, sink: pager}
        - {rule: missed-unanswered, sink: slack, at: 6m}
        - {rule: missed-unanswered, sink: slack, contains: {text: "10m"}}
        - {rule: missed-unanswered, sink: log}
      cancelled:
        - {rule: missed-unanswered, sink: slack, by: 1}
        - {sink: log}
      not_fired:
        - {sink: slack, contains: {text: "5m0s"}}
  - name: no rule matched
    source: siq
    events: [{event_file: attended.json}]
    expect:
      fired: [{rule: missed-unanswered, sink: pager}, {sink: slack}]
  - name: stopped early, with a duplicate
    source: siq
    events:
      - {event_file: missed.json}
      - {event_file: missed.json, at: 1m}
    until: 20m
    expect:
      fired: [{sink: pager}]
`)
	made := "made by events[0] (missed.json) at +0s"
	want := [][]string{
		{
			"route missed-unanswered → pager: want it fired\n" +
				"    got: missed-unanswered → pager cancelled at +10m0s by events[1] (attended.json), " + made + ", due at +30m0s",
			"route missed-unanswered → slack: want it fired at +6m0s\n" +
				"    got: missed-unanswered → slack fired at +5m0s, " + made,
			"route missed-unanswered → slack (fired at +5m0s): field text does not contain what the test wants\n" +
				`    want substring: "10m"` + "\n" +
				`    got:            "[40526000001808100] missed [5m0s] ago, at [2026-01-01 00:00:00 +0000 UTC]"`,
			"route missed-unanswered → log: rule missed-unanswered has no route to sink log (it routes to: slack, pager)",
			"route missed-unanswered → slack: want it cancelled by events[1] (attended.json)\n" +
				"    got: missed-unanswered → slack fired at +5m0s, " + made,
			"route → log: want it cancelled\n" +
				"    got: missed-log → log fired at +0s, " + made + "; rule missed-log has no unless:, so nothing cancels it",
			"route → slack: want it not fired\n" +
				"    got: missed-unanswered → slack fired at +5m0s, " + made,
		},
		{
			"route missed-unanswered → pager: want it fired, but rule missed-unanswered matched none of the events\n" +
				"    events[0] (attended.json):\n" +
				`        event == "conversation.missed" → "conversation.attender.updated" == "conversation.missed" → false`,
			"route → slack: want it fired, but no rule that matched an event routes to sink slack\n" +
				"    deliveries made: (none)",
		},
		{
			"route → pager: want it fired\n" +
				"    got: missed-unanswered → pager still waiting at the end (+20m0s), " + made + ", due at +30m0s\n" +
				"    note: the router takes events[1] (missed.json) for a duplicate of events[0] (missed.json) and keeps the first: it made no deliveries",
		},
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d", len(res), len(want))
	}
	for i, r := range res {
		if r.Matched != "" {
			t.Errorf("%s: matched %q; a sequence has no one set of matched rules", r.Test.Name, r.Matched)
		}
		if got := strings.Join(r.Failures, "\n--\n"); got != strings.Join(want[i], "\n--\n") {
			t.Errorf("%s: failures\n%s\n\nwant\n%s", r.Test.Name, got, strings.Join(want[i], "\n--\n"))
		}
	}
}

func TestSequenceFileErrors(t *testing.T) {
	ev := "      - {event_file: missed.json}\n"
	for _, c := range []struct{ body, want string }{
		{"tests:\n  - name: a\n    event_file: missed.json\n    events:\n" + ev + "    expect: {fired: [{sink: slack}]}\n", "tests[0].events: give events (a sequence) or one event (event or event_file), not both"},
		{"tests:\n  - name: a\n    events: []\n    expect: {fired: [{sink: slack}]}\n", "tests[0].events: a sequence test needs at least one event"},
		{"tests:\n  - name: a\n    events:\n" + ev + "      - {event_file: attended.json, at: -1m}\n    expect: {fired: [{sink: slack}]}\n", `tests[0].events[1].at: invalid duration "-1m"`},
		{"tests:\n  - name: a\n    events:\n      - {event_file: missed.json, at: 5m}\n      - {event_file: attended.json, at: 1m}\n    expect: {fired: [{sink: slack}]}\n", "tests[0].events[1].at: 1m0s is before the event above it (5m0s): list events in time order"},
		{"tests:\n  - name: a\n    events:\n      - {at: 1m}\n    expect: {fired: [{sink: slack}]}\n", "tests[0].events[0]: an event needs event: (inline) or event_file:"},
		{"tests:\n  - name: a\n    events:\n      - {event_file: nope.json}\n    expect: {fired: [{sink: slack}]}\n", "tests.yaml:4:22: tests[0].events[0].event_file: open"},
		{"tests:\n  - name: a\n    events:\n      - {event_file: missed.json, at: 1m, evnt: {}}\n    expect: {fired: [{sink: slack}]}\n", `unknown key "evnt"`},
		{"tests:\n  - name: a\n    events:\n" + ev + "    expect: {match: [r], fired: [{sink: slack}]}\n", "tests[0].expect: match, no_match, routes and no_routes are for a test of one event"},
		{"tests:\n  - name: a\n    events:\n" + ev + "    expect: {}\n", "tests[0].expect: a sequence test needs at least one expectation (fired, cancelled or not_fired)"},
		{"tests:\n  - name: a\n    events:\n" + ev + "    expect: {fired: [{rule: r}]}\n", "tests[0].expect.fired[0].sink: an expectation needs sink:"},
		{"tests:\n  - name: a\n    events:\n" + ev + "    expect: {cancelled: [{sink: pager, by: 2}]}\n", "tests.yaml:5:44: tests[0].expect.cancelled[0].by: there is no events[2]: by: takes an index from 0 to 0, or an event_file"},
		{"tests:\n  - name: a\n    events:\n" + ev + "    expect: {cancelled: [{sink: pager, by: attended.json}]}\n", "tests[0].expect.cancelled[0].by: names no event of the test"},
		{"tests:\n  - name: a\n    events:\n      - {event_file: missed.json, at: 10m}\n    until: 5m\n    expect: {fired: [{sink: slack}]}\n", "tests[0].until: 5m0s is before the last event (10m0s)"},
		{"tests:\n  - name: a\n    event_file: missed.json\n    expect: {fired: [{sink: slack}]}\n", "tests[0].expect: until, fired, cancelled and not_fired are for a sequence test: give events: instead of one event"},
		{"tests:\n  - name: a\n    event_file: missed.json\n    until: 1m\n    expect: {match: [r]}\n", "tests[0].until: until, fired, cancelled and not_fired are for a sequence test"},
	} {
		_, err := LoadTestFile(writeSequence(t, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.body, err, c.want)
		}
	}
}

// TestSequenceConfigTestsRunAtLoad: a sequence in the config's own
// tests: section runs at load, and a failing one refuses the config.
func TestSequenceConfigTestsRunAtLoad(t *testing.T) {
	test := `
tests:
  - name: an answered chat pages nobody
    source: siq
    events:
      - event: {entity_type: conversation, event: conversation.missed, entity_id: "7", event_time: "1", attempt: 1, entity: {id: "7"}}
      - event: {entity_type: conversation, event: conversation.attender.updated, entity_id: "7", event_time: "2", attempt: 1, entity: {id: "7"}}
        at: 10m
    expect:
      cancelled: [{sink: pager}]
`
	mustLoad(t, timerConfig+test, nil)
	msg := loadErr(t, timerConfig+strings.Replace(test, "cancelled: [{sink: pager}]", "fired: [{sink: pager}]", 1), nil)
	if want := `test "an answered chat pages nobody" failed: route → pager: want it fired; got: missed-unanswered → pager cancelled at +10m0s by events[1] (conversation.attender.updated)`; !strings.Contains(msg, want) {
		t.Errorf("load error:\n%s\nwant it to contain\n%s", msg, want)
	}
}

// TestSequenceUncancellable: a same: that fails on the first event makes
// a timer nothing cancels, as in the router, and the failure says why.
func TestSequenceUncancellable(t *testing.T) {
	rt, _ := mustLoad(t, strings.Replace(timerConfig, "same: [entity_id]", "same: [int(entity_id) / 0]", 1), nil)
	tests, err := LoadTestFile(writeSequence(t, `
tests:
  - name: attended in time
    source: siq
    events: [{event_file: missed.json}, {event_file: attended.json, at: 1m}]
    expect: {cancelled: [{sink: pager}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := RunTests(context.Background(), rt, tests)
	got := strings.Join(res[0].Failures, "\n")
	for _, want := range []string{
		"route → pager: want it cancelled\n    got: missed-unanswered → pager fired at +30m0s, made by events[0] (missed.json) at +0s; unless.same fails on that event (",
		"\n    note: events[1] (attended.json) matches unless.when of rule missed-unanswered, but unless.same fails on it (",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("failures:\n%s\nwant them to contain\n%s", got, want)
		}
	}
}
