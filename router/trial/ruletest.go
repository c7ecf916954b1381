package trial

// Rule tests: events with what the rules must make of them, run by
// `hookroute test FILE...` and, for the config's own tests: section, at
// every load (so check reports a failing test as a config error, and a
// reload that would break a tested rule is refused).
//
// A test file holds a tests: list; the config's tests: section has the
// same form:
//
//	tests:
//	  - name: sad rating goes to the console and the helpdesk
//	    source: salesiq            # optional when the config has one source
//	    event_file: examples/events/conversation-rated-sad.json   # or event: {inline}
//	    expect:
//	      match: [sad-chat]        # rules that must match
//	      no_match: [missed-chat]  # rules that must not
//	      routes:                  # routes that must be made; contains: the
//	        - {rule: sad-chat, sink: console, contains: {text: "Tricia"}}   # rendered fields must contain these
//	      no_routes:               # routes that must not be made
//	        - {sink: audit}        # rule: optional (any matched rule)
//
// event_file is relative to the file the test is in. event: takes the
// payload inline, as YAML (numbers keep their digits) or as a string of
// JSON. headers: gives request headers, for sources that read events from
// them. A route to an optional sink that is switched off still counts as
// made: tests are about the rules, not the environment they run in. A
// contains: key may be dedup_key, for the route's rendered dedup key.
//
// A test with events: instead of one event is a sequence test, for rules
// with unless: (timers): see sequence.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookroute/hookroute/router/rules"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router/config"
)

// Test is one rule test.
type Test struct {
	Name      string            `yaml:"name"`
	Source    string            `yaml:"source"`
	EventFile string            `yaml:"event_file"`
	Event     yaml.Node         `yaml:"event"`
	Headers   map[string]string `yaml:"headers"`
	// At is the time the test runs at (RFC 3339), for routes kept to a
	// schedule; default now. For a sequence test it is when the clock
	// starts, default SequenceEpoch.
	At string `yaml:"at"`
	// Events, instead of one event, make a sequence test: the events in
	// time order, run on a virtual clock (see sequence.go).
	Events []SequenceEvent `yaml:"events"`
	// Until is how long a sequence test's clock runs, from its start;
	// unset: until the last timer is due, so every timer not cancelled
	// has fired.
	Until  *config.Duration `yaml:"until"`
	Expect RuleTestExpect   `yaml:"expect"`

	// Pos is where the test is written; Path names it (tests[2]).
	Pos  config.Pos `yaml:"-"`
	Path string     `yaml:"-"`

	payload []byte
}

// RuleTestExpect is what a test wants: Match, NoMatch, Routes and
// NoRoutes of a test of one event, Fired, Cancelled and NotFired of a
// sequence test (events:).
type RuleTestExpect struct {
	Match     []string          `yaml:"match"`
	NoMatch   []string          `yaml:"no_match"`
	Routes    []RouteExpect     `yaml:"routes"`
	NoRoutes  []RouteExpect     `yaml:"no_routes"`
	Fired     []FiredExpect     `yaml:"fired"`
	Cancelled []CancelledExpect `yaml:"cancelled"`
	NotFired  []FiredExpect     `yaml:"not_fired"`
}

// RouteExpect names a route: by sink, and by rule if given (otherwise any
// matched rule's route to the sink). Contains maps a field name to a
// substring its rendered text must contain.
type RouteExpect struct {
	Rule     string            `yaml:"rule"`
	Sink     string            `yaml:"sink"`
	Contains map[string]string `yaml:"contains"`
	// Outcome, when set, is what the delivery must come to first: sent,
	// deferred, suppressed or grouped (a test has no store, so no
	// silence or cooldown holds it back).
	Outcome string `yaml:"outcome"`
}

// String names the route as failures do: "route RULE → SINK".
func (e RouteExpect) String() string {
	if e.Rule == "" {
		return "route → " + e.Sink
	}
	return "route " + e.Rule + " → " + e.Sink
}

// TestResult is the outcome of one test.
type TestResult struct {
	Test *Test
	// Matched is the got/want of the matched rules, when a match or
	// no_match expectation failed ("" otherwise): a summary shown above
	// the failures.
	Matched string
	// Failures each describe one unmet expectation: a headline, then
	// indented lines with the got/want detail. Empty when the test passed.
	Failures []string
}

// Passed reports whether every expectation held.
func (r TestResult) Passed() bool { return len(r.Failures) == 0 }

// LoadTestFile reads a test file (a mapping with a tests: list) and
// its event files. Problems come back as ConfigErrors with positions.
func LoadTestFile(path string) ([]*Test, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rule tests: %w", err)
	}
	withFile := func(es config.ConfigErrors) error {
		for _, e := range es {
			if e.File == "" {
				e.File = path
			}
		}
		es.Sort()
		return es
	}
	if len(data) > config.MaxConfigSize {
		return nil, withFile(config.ConfigErrors{{Msg: fmt.Sprintf("file is larger than %d bytes", config.MaxConfigSize)}})
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, withFile(config.ConfigErrors{config.YAMLSyntaxError(err)})
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, withFile(config.ConfigErrors{{Pos: config.Pos{Line: 1, Col: 1}, Msg: "a rule test file must be a YAML mapping with a tests: list"}})
	}
	if config.HasAlias(&root) {
		return nil, withFile(config.ConfigErrors{{Pos: config.Pos{Line: 1, Col: 1}, Msg: "YAML aliases (*name) are not allowed"}})
	}
	doc := root.Content[0]
	var f struct {
		Tests []yaml.Node `yaml:"tests"`
	}
	if err := config.DecodeStrict(doc, "", &f); err != nil {
		return nil, withFile(config.AsConfigErrors(err, doc, ""))
	}
	if len(f.Tests) == 0 {
		return nil, withFile(config.ConfigErrors{config.NodeError(doc, "tests", "no tests in the file")})
	}
	tests, errs := decodeRuleTests(path, f.Tests)
	if len(errs) > 0 {
		return nil, withFile(errs)
	}
	return tests, nil
}

// decodeRuleTests decodes tests: entries strictly and reads their events;
// event files are relative to file.
func decodeRuleTests(file string, nodes []yaml.Node) ([]*Test, config.ConfigErrors) {
	var tests []*Test
	var errs config.ConfigErrors
	names := map[string]bool{}
	for i := range nodes {
		node := &nodes[i]
		path := fmt.Sprintf("tests[%d]", i)
		t := &Test{Path: path, Pos: config.Pos{File: file, Line: node.Line, Col: node.Column}}
		if err := config.DecodeStrict(node, path, t); err != nil {
			errs = append(errs, config.AsConfigErrors(err, node, path)...)
			continue
		}
		errAt := func(key, format string, args ...any) {
			errs = append(errs, config.NodeError(config.LookupNode(node, key), path+"."+key, format, args...))
		}
		switch {
		case strings.TrimSpace(t.Name) == "":
			errAt("name", "a test needs a name")
		case names[t.Name]:
			errAt("name", "duplicate test name %q", t.Name)
		}
		names[t.Name] = true
		if hasKey(node, "events") {
			if es := decodeSequence(file, node, path, t); len(es) > 0 {
				errs = append(errs, es...)
				continue
			}
			tests = append(tests, t)
			continue
		}
		b, key, err := readEvent(file, t.EventFile, &t.Event)
		if err != nil {
			errAt(key, "%v", err)
			continue
		}
		if b == nil {
			errAt("name", "a test needs an event: (inline), an event_file: or events: (a sequence)")
			continue
		}
		t.payload = b
		e := t.Expect
		if t.Until != nil || len(e.Fired)+len(e.Cancelled)+len(e.NotFired) > 0 {
			key := "until"
			if t.Until == nil {
				key = "expect"
			}
			errAt(key, "until, fired, cancelled and not_fired are for a sequence test: give events: instead of one event")
			continue
		}
		if len(e.Match)+len(e.NoMatch)+len(e.Routes)+len(e.NoRoutes) == 0 {
			errAt("expect", "a test needs at least one expectation (match, no_match, routes or no_routes)")
			continue
		}
		for j, r := range append(append([]RouteExpect(nil), e.Routes...), e.NoRoutes...) {
			if r.Sink == "" {
				key, k := "routes", j
				if j >= len(e.Routes) {
					key, k = "no_routes", j-len(e.Routes)
				}
				errs = append(errs, config.NodeError(config.LookupNode(node, "expect", key, strconv.Itoa(k)), fmt.Sprintf("%s.expect.%s[%d].sink", path, key, k), "a route expectation needs sink:"))
			}
		}
		tests = append(tests, t)
	}
	return tests, errs
}

// readEvent reads a test's event: the file eventFile names, relative to
// file, or the inline event. It returns nil and no error when neither is
// given, and with an error the key it is about.
func readEvent(file, eventFile string, event *yaml.Node) (payload []byte, key string, err error) {
	hasEvent := event.Kind != 0
	switch {
	case eventFile != "" && hasEvent:
		return nil, "event", errors.New("give event or event_file, not both")
	case eventFile != "":
		p := eventFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		b, err := os.ReadFile(p)
		return b, "event_file", err
	case hasEvent:
		b, err := inlineEventJSON(event)
		return b, "event", err
	}
	return nil, "", nil
}

// hasKey reports whether the mapping node has key, null or not: events:
// with nothing under it is a sequence test without events, not a test of
// one event.
func hasKey(node *yaml.Node, key string) bool {
	if node.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return true
		}
	}
	return false
}

// inlineEventJSON turns an inline event into the JSON body it stands for: a
// YAML mapping or list is converted, numbers keeping their digits (an
// app_id beyond 2^53 must stay exact); a string is taken as JSON text.
func inlineEventJSON(n *yaml.Node) ([]byte, error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		b := []byte(strings.TrimSpace(n.Value))
		if !json.Valid(b) {
			return nil, errors.New("a string event must be JSON text")
		}
		return b, nil
	}
	var b bytes.Buffer
	if err := writeJSONNode(&b, n); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeJSONNode(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			b.WriteString("null")
			return nil
		}
		return writeJSONNode(b, n.Content[0])
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				return fmt.Errorf("line %d: event keys must be plain strings", k.Line)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k.Value)
			b.WriteByte(':')
			if err := writeJSONNode(b, n.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSONNode(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		return writeJSONScalar(b, n)
	default:
		return fmt.Errorf("line %d: aliases are not allowed in events", n.Line)
	}
	return nil
}

func writeJSONScalar(b *bytes.Buffer, n *yaml.Node) error {
	v := n.Value
	jsonNumber := v != "" && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') && json.Valid([]byte(v))
	switch n.ShortTag() {
	case "!!null":
		b.WriteString("null")
	case "!!bool":
		var x bool
		if err := n.Decode(&x); err != nil {
			return err
		}
		b.WriteString(strconv.FormatBool(x))
	case "!!int", "!!float":
		if jsonNumber {
			b.WriteString(v) // the digits as written
			return nil
		}
		var f float64 // 0x1F, 1_000, .5 and the like
		if err := n.Decode(&f); err != nil {
			return err
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("line %d: %s has no JSON form", n.Line, v)
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	default:
		writeJSONString(b, v)
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Truncate(b.Len() - 1)
}

// RunTests runs tests against the compiled rules. Nothing is sent.
func RunTests(ctx context.Context, rt *rules.Runtime, tests []*Test) []TestResult {
	out := make([]TestResult, 0, len(tests))
	for _, t := range tests {
		if t.Events != nil {
			out = append(out, runSequence(ctx, rt, t))
			continue
		}
		out = append(out, runRuleTest(ctx, rt, t))
	}
	return out
}

func runRuleTest(ctx context.Context, rt *rules.Runtime, t *Test) TestResult {
	out := TestResult{Test: t}
	o := Options{}
	if t.At != "" {
		at, err := time.Parse(time.RFC3339, t.At)
		if err != nil {
			out.Failures = []string{"at: want an RFC 3339 time such as 2026-12-05T12:00:00Z"}
			return out
		}
		o.Now = func() time.Time { return at }
	}
	res, err := Run(ctx, rt, Input{Source: t.Source, Payload: t.payload, Headers: t.Headers}, o)
	if err != nil {
		out.Failures = []string{"event: " + err.Error()}
		return out
	}
	var fails []string
	ruleResults := map[string]RuleOutcome{}
	var got []string
	for _, r := range res.Rules {
		ruleResults[r.Name] = r
		if r.Matched {
			got = append(got, r.Name)
		}
	}
	var details []string
	explained := map[string]bool{} // rules whose explanation is shown already
	for _, name := range t.Expect.Match {
		r, ok := ruleResults[name]
		switch {
		case !ok:
			details = append(details, noSuchRule(name, res.Rules))
		case !r.Matched:
			details = append(details, ruleDetail(name, "want match, got no match", r))
			explained[name] = true
		}
	}
	for _, name := range t.Expect.NoMatch {
		r, ok := ruleResults[name]
		switch {
		case !ok:
			details = append(details, noSuchRule(name, res.Rules))
		case r.Matched:
			details = append(details, ruleDetail(name, "want no match, got match", r))
		}
	}
	if len(details) > 0 {
		want := listOrNone(t.Expect.Match)
		if len(t.Expect.NoMatch) > 0 {
			want += "   (and not: " + strings.Join(t.Expect.NoMatch, ", ") + ")"
		}
		out.Matched = "want: " + want + "\ngot:  " + listOrNone(got)
		fails = append(fails, details...)
	}
	for _, e := range t.Expect.Routes {
		fails = append(fails, checkRoute(rt, e, res, ruleResults, explained)...)
	}
	for _, e := range t.Expect.NoRoutes {
		for _, r := range res.Routes {
			if r.Sink == e.Sink && (e.Rule == "" || r.Rule == e.Rule) {
				fails = append(fails, fmt.Sprintf("route %s → %s: want no route, got one", r.Rule, r.Sink))
			}
		}
	}
	out.Failures = fails
	return out
}

func noSuchRule(name string, rules []RuleOutcome) string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return fmt.Sprintf("rule %s: no such rule in the config (rules: %s)", name, listOrNone(names))
}

func ruleDetail(name, what string, r RuleOutcome) string {
	lines := []string{"rule " + name + ": " + what}
	for _, l := range r.Explanation {
		lines = append(lines, "    "+l)
	}
	if r.Error != "" {
		lines = append(lines, "    error: "+r.Error)
	}
	return strings.Join(lines, "\n")
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// checkRoute checks one routes: expectation; any of the routes it names
// may meet it.
func checkRoute(rt *rules.Runtime, e RouteExpect, res *Result, ruleResults map[string]RuleOutcome, explained map[string]bool) []string {
	if _, ok := rt.Sinks[e.Sink]; !ok {
		return []string{fmt.Sprintf("%s: no sink %q in the config", e, e.Sink)}
	}
	var candidates []RouteOutcome
	var made []string
	for _, r := range res.Routes {
		made = append(made, r.Rule+" → "+r.Sink)
		if r.Sink == e.Sink && (e.Rule == "" || r.Rule == e.Rule) {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		switch r, ok := ruleResults[e.Rule]; {
		case e.Rule == "":
			return []string{fmt.Sprintf("%s: no matched rule routes to sink %s\n    routes made: %s", e, e.Sink, listOrNone(made))}
		case !ok:
			return []string{fmt.Sprintf("%s: no rule %q in the config", e, e.Rule)}
		case !r.Matched && explained[e.Rule]:
			return []string{fmt.Sprintf("%s: not made, since rule %s did not match", e, e.Rule)}
		case !r.Matched:
			explained[e.Rule] = true
			return []string{ruleDetail(e.Rule, fmt.Sprintf("did not match, so %s was not made", e), r)}
		default:
			var sinks []string
			if rule, ok := rt.Rule(e.Rule); ok {
				for _, x := range rule.Routes {
					sinks = append(sinks, x.Sink)
				}
			}
			return []string{fmt.Sprintf("%s: rule %s has no route to sink %s (it routes to: %s)", e, e.Rule, e.Sink, listOrNone(sinks))}
		}
	}
	var best []string
	for _, c := range candidates {
		fails := checkFields(rt, e, c)
		if len(fails) == 0 {
			return nil
		}
		if best == nil || len(fails) < len(best) {
			best = fails
		}
	}
	return best
}

func checkFields(rt *rules.Runtime, e RouteExpect, r RouteOutcome) []string {
	name := fmt.Sprintf("route %s → %s", r.Rule, r.Sink)
	if sr := rt.Sinks[r.Sink]; r.Error != "" && sr != nil && !sr.Disabled {
		return []string{name + ": " + r.Error}
	}
	var fails []string
	if e.Outcome != "" && e.Outcome != r.Outcome {
		why := ""
		if r.Why != "" {
			why = ": " + r.Why
		}
		fails = append(fails, fmt.Sprintf("%s: outcome %s, want %s%s", name, r.Outcome, e.Outcome, why))
	}
	return append(fails, checkContains(name, e.Contains, r)...)
}

// checkContains checks contains: on a rendered route; name heads each
// failure.
func checkContains(name string, contains map[string]string, r RouteOutcome) []string {
	var fails []string
	for _, k := range slices.Sorted(maps.Keys(contains)) {
		want := contains[k]
		got, ok := r.Fields[k]
		if k == "dedup_key" {
			got, ok = r.DedupKey, r.DedupKey != ""
		}
		if !ok {
			have := slices.Sorted(maps.Keys(r.Fields))
			if r.DedupKey != "" {
				have = append(have, "dedup_key")
			}
			fails = append(fails, fmt.Sprintf("%s: field %s is not set (it sets: %s)", name, k, listOrNone(have)))
			continue
		}
		if !strings.Contains(got, want) {
			fails = append(fails, fmt.Sprintf("%s: field %s does not contain what the test wants\n    want substring: %s\n    got:            %s",
				name, k, strconv.Quote(want), strconv.Quote(runes.Truncate(got, 500))))
		}
	}
	return fails
}

// oneLine folds a multi-line failure into one line for a config error.
func oneLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// ConfigTests returns the config's own tests: section, decoded. (They
// passed, or the config would not have loaded.)
func ConfigTests(rt *rules.Runtime) ([]*Test, error) {
	tests, errs := decodeRuleTests(rt.File, rt.Config.Tests)
	if len(errs) > 0 {
		for _, e := range errs {
			if e.File == "" {
				e.File = rt.File
			}
		}
		errs.Sort()
		return nil, errs
	}
	return tests, nil
}
