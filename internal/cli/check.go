package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/trial"
	"github.com/hookroute/hookroute/sinks"
)

func cmdCheck(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, cfg := newFlags("check", "", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rt, ok := loadConfig(*cfg, sinks.NewRegistry(), stderr)
	if !ok {
		return 1
	}
	for _, w := range rt.Warnings {
		fmt.Fprintf(stdout, "%s: warning: %s\n", *cfg, w)
	}
	fmt.Fprintf(stdout, "%s: ok: %d sources, %d sinks, %d rules\n", *cfg, len(rt.Sources), len(rt.Sinks), len(rt.Rules))
	printSchedules(stdout, rt, time.Now())
	printNoise(stdout, rt)
	return 0
}

// printNoise says which rules send digests and which routes have a
// cooldown or drop what comes outside their schedule, so that a message
// that never comes is no surprise either.
func printNoise(w io.Writer, rt *rules.Runtime) {
	for _, r := range rt.Rules {
		if g := r.Group; g != nil {
			by := "one group"
			if len(g.By) > 0 {
				by = "groups by " + strings.Join(g.By, ", ")
			}
			fmt.Fprintf(w, "rule %s: digests, %s; a group's first event waits %s, one notification per %s at most, listing up to %d events\n",
				r.Name, by, g.Wait, g.Interval, g.Max)
		}
		if u := r.Unless; u != nil {
			fmt.Fprintf(w, "rule %s: waits %s unless an event matching %q with the same %s comes first\n",
				r.Name, u.Within, u.When, strings.Join(u.Same, ", "))
		}
		for _, route := range r.Routes {
			if route.Delay > 0 {
				fmt.Fprintf(w, "route %s → %s: an escalation step at %s\n", r.Name, route.Sink, route.Delay)
			}
			if route.Cooldown != nil {
				fmt.Fprintf(w, "route %s → %s: cooldown %s per key value; later ones within it are suppressed\n", r.Name, route.Sink, route.Cooldown.For)
			}
			if route.DropClosed && route.Window != nil {
				fmt.Fprintf(w, "route %s → %s: outside its schedule (%s) deliveries are suppressed, not deferred\n", r.Name, route.Sink, route.Window.Key())
			}
		}
	}
}

// printSchedules says where each schedule stands at now and which routes
// keep to it, so that a route held back by its hours is no surprise.
func printSchedules(w io.Writer, rt *rules.Runtime, now time.Time) {
	for _, name := range slices.Sorted(maps.Keys(rt.Schedules)) {
		var routes []string
		for _, r := range rt.Rules {
			for _, route := range r.Routes {
				if route.Window != nil && route.Window.Schedule.Name() == name {
					routes = append(routes, fmt.Sprintf("%s → %s (%s)", r.Name, route.Sink, route.Window.Key()))
				}
			}
		}
		fmt.Fprintf(w, "schedule %s: %s; routes: %d\n", name, rt.Schedules[name].Describe(now), len(routes))
		for _, r := range routes {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
}

// loadConfig loads and compiles the config at path, printing what is
// wrong with it.
func loadConfig(path string, reg config.SinkFactory, stderr io.Writer) (*rules.Runtime, bool) {
	rt, err := trial.LoadFile(path, reg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	return rt, true
}
