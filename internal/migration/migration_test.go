package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	good := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
		"m/README":     {Data: []byte("ignored")},
	}
	steps, err := Load(good, "m")
	if err != nil || len(steps) != 2 || steps[0].SQL != "A" || steps[1].Version != 2 || steps[1].Name != "0002_b.sql" {
		t.Fatalf("Load = %+v, %v", steps, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"no digit": {"m/init.sql": {}},
		"zero":     {"m/0000_a.sql": {}},
	} {
		if _, err := Load(fsys, "m"); err == nil || !strings.Contains(err.Error(), "migration") {
			t.Errorf("%s: Load = %v, want an error", name, err)
		}
	}
}
