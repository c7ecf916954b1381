// Package randomid makes the random part of every id hookroute invents.
package randomid

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// New returns n random bytes in lowercase base32hex without padding,
// 8 characters for every 5 bytes. It makes the random part of every id the
// engine invents (key ids, trial delivery ids, the default lease owner):
// [0-9a-v] needs no quoting in a URL path, a header or a log line, and
// lowercase is what key ids have always been.
func New(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
