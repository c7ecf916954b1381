// Command salesiqgen writes the code that the SalesIQ schema drives: the
// types in router/salesiq.go are the schema (their expr and salesiq tags),
// and from them it writes router/salesiq_gen.go (the views' Map methods)
// and router/source/salesiq_gen.go (the decoder that fills the types from
// a decoded body, and the writer that turns a stored body straight into
// the view's JSON). Those three had been written by hand and kept in step
// only by tests; a field is now added in one place.
//
// Run it with `go generate ./router` from the module root, or
// `go run ./internal/salesiqgen` from anywhere inside the module.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root, err := moduleRoot()
	if err == nil {
		err = write(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "salesiqgen:", err)
		os.Exit(1)
	}
}

// write generates both files under the module root.
func write(root string) error {
	files, err := generate(root)
	if err != nil {
		return err
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(root, name), src, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// moduleRoot is the nearest directory, from the working one up, that
// holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
