// Package cli is hookroute's command line: every subcommand (serve, check,
// send, trial, test, deliveries, keys, silences, timers, verify, version), its
// flags, its messages and its exit codes. main only hands it the
// process's arguments, streams and signal context.
//
// Exit codes are the same for every command: 0 success, 1 the work failed
// (a config that does not load, a refused request, a failing test), 2 a
// usage error.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"

	"github.com/hookroute/hookroute/router/rules"
)

const usage = `usage: hookroute COMMAND [flags]

commands:
  serve     run the router (ingest, delivery workers, /metrics)
  check     validate the config: every expression and template compiled, tests: run
  trial     show which rules an event matches and why not, and the requests sinks would get
  test      run rule test files (events with the rules and routes they must hit)
  send      sign a payload as a source would and post it
  deliveries list|show|replay   the delivery log and dead letters (admin API)
  keys generate|list|delete     outbound signing keys of secured http sinks (admin API)
  silences add|list|expire      mute the deliveries a matcher selects, for a while (admin API)
  timers list|cancel            the waiting timers of rules with unless: (admin API)
  verify    check an x-siqsignature over a file with a public key (for receivers)
  version   print version and build info

Every command takes -c/--config FILE (default rules.yaml, or $HOOKROUTE_CONFIG).
`

// command runs one subcommand with the arguments after its name and
// returns the exit code.
type command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

var commands = map[string]command{
	"serve":      cmdServe,
	"check":      cmdCheck,
	"send":       cmdSend,
	"trial":      cmdTrial,
	"test":       cmdTest,
	"deliveries": cmdDeliveries,
	"keys":       cmdKeys,
	"silences":   cmdSilences,
	"timers":     cmdTimers,
	"verify":     cmdVerify,
}

// Main runs the command line args (without the program name) and returns
// the process's exit code. ctx ends serve's run and cancels the requests
// of the others.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "hookroute: unknown command %q\n\n%s", name, usage)
		return 2
	}
	return cmd(ctx, args, stdin, stdout, stderr)
}

func versionString() string {
	v, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	return fmt.Sprintf("hookroute %s%s", v, rev)
}

// defaultConfig is the config file a command reads without -c.
func defaultConfig() string {
	if def := os.Getenv("HOOKROUTE_CONFIG"); def != "" {
		return def
	}
	return "rules.yaml"
}

// newFlags returns a flag set with -c/--config, which every command
// takes. usage, when not empty, replaces the flag package's own help text
// (the flags are listed after it).
func newFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if usage != "" {
		fs.Usage = func() {
			fmt.Fprint(stderr, usage, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	def := defaultConfig()
	cfg := fs.String("config", def, "config `file`")
	fs.StringVar(cfg, "c", def, "config `file` (shorthand)")
	return fs, cfg
}

// parseInterleaved parses flags wherever they stand among the arguments
// (hookroute test a.yaml -c rules.yaml, hookroute keys delete KEYID --sink
// s) and returns the others.
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

// egressAllow reads the config's egress.allow (validated at load).
func egressAllow(rt *rules.Runtime) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range rt.Config.Egress.Allow {
		if p, err := netip.ParsePrefix(a); err == nil {
			out = append(out, p)
		}
	}
	return out
}
