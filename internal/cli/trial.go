package cli

// hookroute trial: one event through the config's rules (which rules match
// and why the others do not, and the exact request each sink would
// receive, sent only with --send). It works on the config file alone: no
// running router and no store are needed, and nothing is recorded.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hookroute/hookroute/router/trial"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/sinks"
)

const trialUsage = `usage: hookroute trial [-c rules.yaml] --event FILE.json [--source NAME] [--header 'Name: value']... [--send] [--json] [-v]

Runs the event through the rules: which match, why the others do not, and
the request each matched route's sink would receive (secrets redacted).
Nothing is sent unless --send is given; then each route is delivered once,
for real, and nothing is recorded in the delivery log. FILE - reads stdin.
`

func cmdTrial(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
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
	payload, err := readEvent(*event, stdin)
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
	rt, err := trial.LoadFile(*cfg, reg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// As serve does: the config's egress.allow opens private ranges.
	live.SetEgressAllow(egressAllow(rt))
	res, err := trial.Run(ctx, rt, trial.Input{Source: *source, Payload: payload, Headers: headers.m, Send: *send}, trial.Options{Capture: capture})
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
func trialExit(rt *rules.Runtime, res *trial.Result) int {
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

func printTrial(w io.Writer, res *trial.Result, verbose bool) {
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
	printCancels(w, res.Cancels)
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
		printRoute(w, r)
	}
}

// printCancels prints the timers the event would cancel, before the
// routes: an event that cancels timers often matches no rule itself.
func printCancels(w io.Writer, cs []trial.TimerCancel) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintln(w, "timers this event would cancel (a trial cancels nothing):")
	const ind = "      "
	for _, c := range cs {
		if c.Same != "" {
			fmt.Fprintf(w, "  %s, same %s\n", c.Rule, c.Same)
		} else {
			fmt.Fprintf(w, "  %s\n", c.Rule)
		}
		switch {
		case c.Error != "":
			fmt.Fprintf(w, "%serror: %s\n", ind, c.Error)
		case c.Deliveries == nil:
			fmt.Fprintf(w, "%s%s\n", ind, c.Note)
		case len(c.Deliveries) == 0:
			fmt.Fprintf(w, "%sno delivery waits under timer key %s\n", ind, c.Key)
		default:
			fmt.Fprintf(w, "%swould cancel %d waiting: %s\n", ind, len(c.Deliveries), strings.Join(c.Deliveries, ", "))
		}
	}
	fmt.Fprintln(w)
}

// printRoute prints one route of a trial: the request its sink would
// receive (or the rendered fields, for a sink that makes no HTTP request)
// and, after --send, how the attempt went.
func printRoute(w io.Writer, r trial.RouteOutcome) {
	fmt.Fprintf(w, "  %s → %s (%s)\n", r.Rule, r.Sink, r.Kind)
	const ind = "      "
	if r.Error != "" {
		fmt.Fprintf(w, "%snot delivered: %s\n", ind, r.Error)
	}
	if r.DedupKey != "" {
		fmt.Fprintf(w, "%sdedup_key: %s (a trial never records it)\n", ind, r.DedupKey)
	}
	if r.Schedule != "" {
		fmt.Fprintf(w, "%s%s\n", ind, r.Schedule)
	}
	if r.Outcome != "" && r.Outcome != "sent" {
		fmt.Fprintf(w, "%soutcome: %s: %s\n", ind, r.Outcome, r.Why)
	}
	if r.Action != "" {
		fmt.Fprintf(w, "%swould: %s\n", ind, r.Action)
	}
	for _, sink := range slices.Sorted(maps.Keys(r.Links)) {
		l := r.Links[sink]
		fmt.Fprintf(w, "%slink from %s: %s", ind, sink, l["id"])
		if l["url"] != "" {
			fmt.Fprintf(w, " %s", l["url"])
		}
		fmt.Fprintln(w)
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

// readEvent reads the event file, or stdin for "-".
func readEvent(path string, stdin io.Reader) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
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
