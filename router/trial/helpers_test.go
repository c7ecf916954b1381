package trial

import (
	"errors"
	"os"
	"testing"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
)

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../source/testdata/events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustLoad(t *testing.T, src string, env map[string]string) (*rules.Runtime, *testkit.FakeFactory) {
	t.Helper()
	f := &testkit.FakeFactory{}
	rt, err := Load("rules.yaml", []byte(src), f, testkit.Lookup(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return rt, f
}

func loadErr(t *testing.T, src string, env map[string]string) string {
	t.Helper()
	_, err := Load("rules.yaml", []byte(src), &testkit.FakeFactory{}, testkit.Lookup(env))
	if err == nil {
		t.Fatalf("Load succeeded, want an error")
	}
	var es config.ConfigErrors
	if !errors.As(err, &es) {
		t.Fatalf("Load error %T %v, want ConfigErrors", err, err)
	}
	return err.Error()
}
