package dispatch

import (
	"regexp"
	"testing"
)

// TestRandomIDs: the ids made with randomID keep their documented shapes
// (a key id is "k_" and 16 base32 characters), and two are never alike.
func TestRandomIDs(t *testing.T) {
	for _, c := range []struct {
		make func() string
		want *regexp.Regexp
	}{
		{newKeyID, regexp.MustCompile(`^k_[0-9a-v]{16}$`)},
		{trialID, regexp.MustCompile(`^trial-[0-9a-v]{16}$`)},
		{func() string { return randomID(5) }, regexp.MustCompile(`^[0-9a-v]{8}$`)},
	} {
		a, b := c.make(), c.make()
		if !c.want.MatchString(a) || !c.want.MatchString(b) {
			t.Errorf("%q, %q: want %s", a, b, c.want)
		}
		if a == b {
			t.Errorf("two ids alike: %q", a)
		}
	}
}
