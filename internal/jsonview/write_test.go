package jsonview

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendString: AppendString writes what encoding/json writes for a
// string with HTML escaping off, whatever the bytes.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "say \"hi\"\n<b> & \\ \t", "\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe ok é", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want.Bytes())
		}
	})
}
