package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
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
	return 0
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
