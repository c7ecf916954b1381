package cli

// hookroute test: rule tests, events with the routes they must and must not
// make, run on the config file alone.

import (
	"context"
	"fmt"
	"github.com/hookroute/hookroute/router/trial"
	"io"
	"strings"

	"github.com/hookroute/hookroute/sinks"
)

const testUsage = `usage: hookroute test [-c rules.yaml] [FILE.yaml...]

Runs rule tests: each FILE holds a tests: list (the config's own tests:
section has the same form, and runs when no FILE is given). Exit 1 if any
test fails.
`

func cmdTest(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, cfg := newFlags("test", testUsage, stderr)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	// The config's own tests run as it loads: a failing one is reported
	// here as a config error, like check does.
	rt, err := trial.LoadFile(*cfg, sinks.NewCaptureRegistry())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var tests []*trial.Test
	if len(files) == 0 {
		if tests, err = trial.ConfigTests(rt); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if len(tests) == 0 {
			fmt.Fprintf(stderr, "hookroute test: %s has no tests: section; give test files\n\n%s", *cfg, testUsage)
			return 2
		}
	}
	more, ok := loadRuleTestFiles(files, stderr)
	if !ok {
		return 1
	}
	tests = append(tests, more...)
	passed, failed := 0, 0
	for _, res := range trial.RunTests(ctx, rt, tests) {
		if printRuleTestResult(stdout, res) {
			passed++
		} else {
			failed++
		}
	}
	fmt.Fprintf(stdout, "\n%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// loadRuleTestFiles reads every file, reporting each one's errors, so that
// one run shows all that is wrong; ok is false if any file failed.
func loadRuleTestFiles(files []string, stderr io.Writer) (tests []*trial.Test, ok bool) {
	ok = true
	for _, f := range files {
		ts, err := trial.LoadTestFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			ok = false
			continue
		}
		tests = append(tests, ts...)
	}
	return tests, ok
}

// printRuleTestResult prints one test's outcome, with the rules it matched
// and its failures when it failed, and reports whether it passed.
func printRuleTestResult(stdout io.Writer, res trial.TestResult) bool {
	t := res.Test
	if res.Passed() {
		fmt.Fprintf(stdout, "ok      %s (%s)\n", t.Name, t.Pos)
		return true
	}
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
	return false
}
