// Package clitrial implements `hookroute trial` and `hookroute test`: the
// trial run of one event through the config's rules (which rules match and
// why the others do not, and the exact request each sink would receive,
// sent only with --send), and rule tests (events with the routes they must
// and must not make). Both work on the config file alone: no running
// router and no store are needed, and nothing is recorded.
package clitrial

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/sinks"
)

const trialUsage = `usage: hookroute trial [-c rules.yaml] --event FILE.json [--source NAME] [--header 'Name: value']... [--send] [--json] [-v]

Runs the event through the rules: which match, why the others do not, and
the request each matched route's sink would receive (secrets redacted).
Nothing is sent unless --send is given; then each route is delivered once,
for real, and nothing is recorded in the delivery log. FILE - reads stdin.
`

const testUsage = `usage: hookroute test [-c rules.yaml] [FILE.yaml...]

Runs rule tests: each FILE holds a tests: list (the config's own tests:
section has the same form, and runs when no FILE is given). Exit 1 if any
test fails.
`

// Trial runs `hookroute trial` and returns the exit code.
func Trial(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := newFlags("trial", trialUsage, stderr)
	event := fs.String("event", "", "the event `FILE` (JSON, as the sender posts it; - for stdin)")
	source := fs.String("source", "", "source `NAME` (default: the config's only source)")
	send := fs.Bool("send", false, "deliver for real (one attempt per route; not recorded)")
	asJSON := fs.Bool("json", false, "print the result as JSON (the shape of POST /api/trial)")
	verbose := fs.Bool("v", false, "explain matched rules too")
	var headers headerFlags
	fs.Var(&headers, "header", "a request `header` 'Name: value' (repeatable), for sources that read events from headers")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if *event == "" && len(rest) == 1 {
		*event, rest = rest[0], nil
	}
	if *event == "" || len(rest) > 0 {
		fmt.Fprint(stderr, trialUsage)
		return 2
	}
	payload, err := readEvent(*event)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute trial:", err)
		return 1
	}
	// Without --send, the config's sinks are built by a capture registry
	// alone: no sink of this process can reach the network.
	capture := sinks.NewCaptureRegistry()
	var reg config.SinkFactory = capture
	live := sinks.NewRegistry()
	if *send {
		reg = live
	}
	rt, err := dispatch.LoadFile(*cfg, reg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// As serve does: the config's egress.allow opens private ranges.
	live.SetEgressAllow(egressAllow(rt))
	res, err := rt.Trial(ctx, dispatch.TrialInput{Source: *source, Payload: payload, Headers: headers.m, Send: *send}, dispatch.TrialOptions{Capture: capture})
	if err != nil {
		fmt.Fprintln(stderr, "hookroute trial:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printTrial(stdout, res, *verbose)
	}
	return trialExit(rt, res)
}

// trialExit is 1 when a route would fail (a template that does not render,
// a sink that refuses the fields) or a send failed; a sink switched off
// for want of its variables is not a failure of the event.
func trialExit(rt *dispatch.Runtime, res *dispatch.TrialResult) int {
	for _, r := range res.Routes {
		if r.Result != nil && r.Result.Error != "" {
			return 1
		}
		if sr := rt.Sinks[r.Sink]; r.Error != "" && (sr == nil || !sr.Disabled) {
			return 1
		}
	}
	return 0
}

func printTrial(w io.Writer, res *dispatch.TrialResult, verbose bool) {
	name := res.EventName
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(w, "event %s from source %s, id %s\n\n", name, res.Source, res.EventID)
	fmt.Fprintln(w, "rules:")
	if len(res.Rules) == 0 {
		fmt.Fprintln(w, "  (none in the config)")
	}
	for _, r := range res.Rules {
		mark := "no match"
		if r.Matched {
			mark = "match"
		}
		fmt.Fprintf(w, "  %-9s %s\n", mark, r.Name)
		if r.Matched && !verbose {
			continue
		}
		for _, l := range r.Explanation {
			fmt.Fprintf(w, "              %s\n", l)
		}
		if r.Error != "" {
			fmt.Fprintf(w, "              error (counted as no match): %s\n", r.Error)
		}
	}
	fmt.Fprintln(w)
	switch {
	case len(res.Routes) == 0:
		fmt.Fprintln(w, "routes: none (no rule matched)")
		return
	case res.Send:
		fmt.Fprintln(w, "routes (delivered once each, not recorded in the delivery log):")
	default:
		fmt.Fprintln(w, "routes (rendered, not sent; --send delivers them):")
	}
	for _, r := range res.Routes {
		fmt.Fprintf(w, "  %s → %s (%s)\n", r.Rule, r.Sink, r.Kind)
		const ind = "      "
		if r.Error != "" {
			fmt.Fprintf(w, "%snot delivered: %s\n", ind, r.Error)
		}
		if r.DedupKey != "" {
			fmt.Fprintf(w, "%sdedup_key: %s (a trial neither looks it up nor records it)\n", ind, r.DedupKey)
		}
		if r.Request != nil {
			fmt.Fprintf(w, "%s%s %s\n", ind, r.Request.Method, r.Request.URL)
			for _, k := range slices.Sorted(maps.Keys(r.Request.Headers)) {
				fmt.Fprintf(w, "%s%s: %s\n", ind, k, r.Request.Headers[k])
			}
			if r.Request.Body != "" {
				fmt.Fprintln(w)
				for _, l := range strings.Split(r.Request.Body, "\n") {
					fmt.Fprintf(w, "%s%s\n", ind, l)
				}
			}
		} else {
			// No HTTP request to show (a log sink, or one that refused the
			// fields): the rendered fields are what it gets.
			for _, k := range slices.Sorted(maps.Keys(r.Fields)) {
				fmt.Fprintf(w, "%s%s: %s\n", ind, k, r.Fields[k])
			}
		}
		if res := r.Result; res != nil {
			switch {
			case res.Error != "":
				fmt.Fprintf(w, "%sfailed: %s\n", ind, res.Error)
			case res.RemoteID != "":
				fmt.Fprintf(w, "%ssent: status %d, remote id %s\n", ind, res.StatusCode, res.RemoteID)
			default:
				fmt.Fprintf(w, "%ssent: status %d\n", ind, res.StatusCode)
			}
		}
	}
}

// Test runs `hookroute test` and returns the exit code.
func Test(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := newFlags("test", testUsage, stderr)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	// The config's own tests run as it loads: a failing one is reported
	// here as a config error, like check does.
	rt, err := dispatch.LoadFile(*cfg, sinks.NewCaptureRegistry())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var tests []*dispatch.RuleTest
	if len(files) == 0 {
		if tests, err = rt.ConfigTests(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if len(tests) == 0 {
			fmt.Fprintf(stderr, "hookroute test: %s has no tests: section; give test files\n\n%s", *cfg, testUsage)
			return 2
		}
	}
	broken := false
	for _, f := range files {
		ts, err := dispatch.LoadRuleTestFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			broken = true
			continue
		}
		tests = append(tests, ts...)
	}
	if broken {
		return 1
	}
	passed, failed := 0, 0
	for _, res := range rt.RunRuleTests(ctx, tests) {
		t := res.Test
		if res.Passed() {
			passed++
			fmt.Fprintf(stdout, "ok      %s (%s)\n", t.Name, t.Pos)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL    %s (%s)\n", t.Name, t.Pos)
		if res.Matched != "" {
			fmt.Fprintln(stdout, "        matched rules:")
			for _, l := range strings.Split(res.Matched, "\n") {
				fmt.Fprintf(stdout, "            %s\n", l)
			}
		}
		for _, f := range res.Failures {
			for _, l := range strings.Split(f, "\n") {
				fmt.Fprintf(stdout, "        %s\n", l)
			}
		}
	}
	fmt.Fprintf(stdout, "\n%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// newFlags returns a flag set with -c/--config, defaulting like every
// other command to $HOOKROUTE_CONFIG or rules.yaml.
func newFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, "\nflags:\n")
		fs.PrintDefaults()
	}
	def := os.Getenv("HOOKROUTE_CONFIG")
	if def == "" {
		def = "rules.yaml"
	}
	cfg := fs.String("config", def, "config `file`")
	fs.StringVar(cfg, "c", def, "config `file` (shorthand)")
	return fs, cfg
}

// parseInterleaved parses flags wherever they stand among the arguments
// (hookroute test a.yaml -c rules.yaml) and returns the others.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func readEvent(path string) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read event: %w", err)
	}
	if !json.Valid(b) {
		return nil, errors.New("the event file is not JSON")
	}
	return b, nil
}

// headerFlags collects --header 'Name: value'.
type headerFlags struct{ m map[string]string }

// String implements flag.Value.
func (h *headerFlags) String() string { return "" }

// Set implements flag.Value: it adds one header.
func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return errors.New("want 'Name: value'")
	}
	if h.m == nil {
		h.m = map[string]string{}
	}
	h.m[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	return nil
}

// egressAllow reads the config's egress.allow (validated at load).
func egressAllow(rt *dispatch.Runtime) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range rt.Config.Egress.Allow {
		if p, err := netip.ParsePrefix(a); err == nil {
			out = append(out, p)
		}
	}
	return out
}
