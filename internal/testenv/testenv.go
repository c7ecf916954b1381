// Package testenv decides what a test does when something it needs from
// the machine (a PostgreSQL server, a browser) is missing: on a developer's
// machine it skips, saying why; in CI (CI=true) it fails, since CI
// installs everything and a skipped test there would pass for nothing.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where .ci/run has installed
// and started everything they need.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips t, or fails it under CI, when have is false; why says what
// is missing and how to get it.
func Require(t testing.TB, have bool, why string) {
	t.Helper()
	if have {
		return
	}
	if InCI() {
		t.Fatalf("%s (CI=true: .ci/run provides it, so this is a failure, not a skip)", why)
		return
	}
	t.Skip(why)
}
