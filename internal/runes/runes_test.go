package runes

import "testing"

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"héllo", 5, "héllo"},
		{"héllo wörld", 5, "héll…"},
		{"héllo", 0, "héllo"},
		{"héllo", -1, "héllo"},
		{"héllo", 1, "…"},
	} {
		if got := Truncate(c.s, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
