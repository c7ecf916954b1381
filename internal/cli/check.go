package cli

import (
	"context"
	"fmt"
	"github.com/hookroute/hookroute/router/trial"
	"io"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
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
	return 0
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
