package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGeneratedFilesAreCurrent fails when the schema changed and
// `go generate ./router` was not run, or a generated file was edited.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what %s generates: run go generate ./router", name, schemaFile)
		}
	}
}

// schemaWith is a copy of the module's schema in a temporary root, with
// edit applied, so that generate can be tried on a changed schema.
func schemaWith(t *testing.T, edit func(string) string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", schemaFile))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "router"), 0o755); err != nil {
		t.Fatal(err)
	}
	changed := edit(string(src))
	if changed == string(src) {
		t.Fatal("the edit changed nothing: the schema file moved on")
	}
	if err := os.WriteFile(filepath.Join(root, schemaFile), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAFieldReachesMapDecoderAndWriter adds one chat field to the schema
// and finds it in all three places the schema drives.
func TestAFieldReachesMapDecoderAndWriter(t *testing.T) {
	root := schemaWith(t, func(s string) string {
		return strings.Replace(s, "type SalesIQChat struct {\n",
			"type SalesIQChat struct {\n\tTranscriptURL string `expr:\"transcript_url\" salesiq:\"transcript\"`\n", 1)
	})
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]string{
		routerFile: {`"transcript_url": +v\.TranscriptURL,`},
		sourceFile: {
			`out\.TranscriptURL = jsonview\.Str\(m\["transcript"\]\)`,                                                            // decoder
			`"supervisors", "transcript", "visitor"`,                                                                             // the keys the writer picks
			`w\.key\("supervisors"\)\s+w\.value\(e\[entSupervisors\], '\['\)\s+w\.key\("transcript_url"\)\s+w\.string\(w\.strOf`, // writer, in key order
		},
	} {
		for _, w := range want {
			if !regexp.MustCompile(w).Match(files[file]) {
				t.Errorf("%s lacks %q:\n%s", file, w, files[file])
			}
		}
	}
}

func TestBadTagsAreRefused(t *testing.T) {
	for _, c := range []struct{ name, old, new, want string }{
		{"no source", `salesiq:"status"`, ``, "want expr and salesiq tags"},
		{"unknown option", `salesiq:"rating,rating"`, `salesiq:"rating,stars"`, `unknown salesiq option "stars"`},
		{"rating on a non-string", `expr:"rating_raw" salesiq:"rating"`, `expr:"rating_raw" salesiq:"rating,rating"`, "SalesIQChat.RatingRaw: a rating is a string"},
		{"event field without a source", `salesiq:"envelope.version"`, `salesiq:"version"`, "SalesIQEvent.Version: the event's fields name their source"},
		{"envelope field of another type", "Version   string         `expr:\"version\"", "Version   []any          `expr:\"version\"", "an envelope field is a string or an int"},
		{"struct field of an unknown type", "Feedback              string ", "Feedback              float64", "SalesIQChat.Feedback: type float64"},
		{"entity struct not in the schema", `Chat     SalesIQChat   `, `Chat     SalesIQOther  `, "an entity field's type is a struct of this schema"},
		{"a struct read both ways", `Chat     SalesIQChat   `, `Chat     SalesIQPerson `, "SalesIQPerson is read both from the entity and from one of its members"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := schemaWith(t, func(s string) string { return strings.Replace(s, c.old, c.new, 1) })
			_, err := generate(root)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
