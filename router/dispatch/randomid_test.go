package dispatch

import (
	"regexp"
	"testing"

	"github.com/hookroute/hookroute/internal/randomid"
)

// TestRandomIDs: the ids made with randomid.New keep their documented shapes, and two are never alike.
func TestRandomIDs(t *testing.T) {
	for _, c := range []struct {
		make func() string
		want *regexp.Regexp
	}{
		{func() string { return randomid.New(5) }, regexp.MustCompile(`^[0-9a-v]{8}$`)},
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
