// Package migration reads a store's embedded schema steps. Both stores
// keep their SQL in migrations/NNNN_what.sql files and apply them their own
// way (SQLite in one transaction, PostgreSQL behind an advisory lock); the
// naming and ordering rules are shared here.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Step is one numbered schema step. A released step is never edited: a
// change is a new step.
type Step struct {
	Version int
	Name    string // the file name, for errors
	SQL     string
}

// Load returns the *.sql steps in dir of fsys in version order. Numbering
// must be 1, 2, 3… without gaps, so that a step lost in a merge is caught
// in tests rather than silently skipped on some databases.
func Load(fsys fs.FS, dir string) ([]Step, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var steps []Step
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", base)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].Version < steps[j].Version })
	for i, s := range steps {
		if s.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", s.Name, s.Version, i+1)
		}
	}
	return steps, nil
}
