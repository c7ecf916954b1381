package router_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/hookroute/hookroute"

// deps lists the packages pkg depends on that are not the standard
// library, as go list sees them (tests excluded).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var ds []string
	for _, l := range strings.Fields(string(out)) {
		if l != pkg {
			ds = append(ds, l)
		}
	}
	return ds
}

// TestDomainImportsOnlyTheStandardLibrary: the domain is what every other
// package may depend on, so it depends on nothing.
func TestDomainImportsOnlyTheStandardLibrary(t *testing.T) {
	if ds := deps(t, module+"/router"); len(ds) > 0 {
		t.Errorf("package router imports %v; it may import the standard library only", ds)
	}
}

// TestStoresImportOnlyTheDomain: a store knows the domain's records and
// nothing of the engine, the config or the sinks. Of the module's own
// packages it may import the domain and two leaf helpers; drivers are its
// own business.
func TestStoresImportOnlyTheDomain(t *testing.T) {
	allowed := []string{module + "/router", module + "/internal/migration", module + "/internal/lograte"}
	for _, store := range []string{"router/sqlite", "router/postgres", "router/storetest"} {
		for _, d := range deps(t, module+"/"+store) {
			if strings.HasPrefix(d, module+"/") && !slices.Contains(allowed, d) {
				t.Errorf("%s imports %s; a store may import only %v of this module", store, d, allowed)
			}
		}
	}
	for _, leaf := range append(allowed[1:], module+"/internal/redact", module+"/internal/runes", module+"/router/schedule") {
		if ds := deps(t, leaf); len(ds) > 0 {
			t.Errorf("%s imports %v; it must stay a leaf of the standard library", leaf, ds)
		}
	}
}
