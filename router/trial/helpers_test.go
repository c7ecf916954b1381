package trial

import (
	"testing"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router/rules"
)

// mustLoad and loadErr load through Load, which runs the config's tests.
func mustLoad(t *testing.T, src string, env map[string]string) (*rules.Runtime, *testkit.FakeFactory) {
	t.Helper()
	return testkit.MustLoad(t, Load, src, env)
}

func loadErr(t *testing.T, src string, env map[string]string) string {
	t.Helper()
	return testkit.LoadError(t, Load, src, env)
}
