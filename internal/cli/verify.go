package cli

// hookroute verify: checks an x-siqsignature locally, for the people
// writing a receiver of secured webhooks.

import (
	"bytes"
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hookroute/hookroute/router/verify"
)

const verifyUsage = `usage: hookroute verify --public-key PEM --signature SIG [FILE]

Checks an x-siqsignature as a receiver of a secured hookroute (or SalesIQ)
webhook must: base64 of an RSA-SHA256 PKCS#1 v1.5 signature over the exact
bytes of the body. FILE holds the body as received (default, or "-": stdin).
--public-key is a file or the PEM itself ("PUBLIC KEY", "RSA PUBLIC KEY" or
bare base64 DER); give it twice to accept either key of a rotation.
Exit status: 0 valid, 1 invalid, 2 usage or unreadable input.
-c FILE is accepted as by every command; verify needs nothing from it.
`

// keyFlags collects repeated --public-key values.
type keyFlags []string

func (k *keyFlags) String() string     { return strings.Join(*k, ",") }
func (k *keyFlags) Set(v string) error { *k = append(*k, v); return nil }

// cmdVerify runs `hookroute verify ARGS`: 0 when the signature verifies, 1
// when it does not, 2 for a usage error or input it cannot read.
func cmdVerify(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// -c is taken, as by every command, and not read: what verifies is
	// the receiver's copy of the public key, not the router's config.
	fs, _ := newFlags("verify", "", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage) }
	var keyArgs keyFlags
	fs.Var(&keyArgs, "public-key", "public key `PEM` file, or the PEM itself (repeatable)")
	sig := fs.String("signature", "", "the x-siqsignature value (base64)")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(keyArgs) == 0 || *sig == "" || len(rest) > 1 {
		fmt.Fprint(stderr, verifyUsage)
		return 2
	}
	keys, err := readPublicKeys(keyArgs)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute verify:", err)
		return 2
	}
	name := "-"
	if len(rest) == 1 {
		name = rest[0]
	}
	body, err := readBody(name, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute verify:", err)
		return 2
	}
	v, err := verify.NewSalesIQ(keys)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute verify:", err)
		return 2
	}
	h := http.Header{}
	h.Set("x-siqsignature", strings.TrimSpace(*sig))
	if err := v.Verify(h, body, time.Now()); err != nil {
		fmt.Fprintf(stdout, "invalid: %v\n", err)
		// The commonest receiver mistake: an editor or a shell adds a
		// final newline the sender never signed.
		if trimmed := bytes.TrimRight(body, "\r\n"); len(trimmed) < len(body) && v.Verify(h, trimmed, time.Now()) == nil {
			fmt.Fprintln(stdout, "note: it verifies over the body without its final newline: the file has bytes the sender did not send (sign and verify the raw body, byte for byte)")
		}
		return 1
	}
	fmt.Fprintf(stdout, "valid: the signature over %s (%d bytes) verifies\n", displayName(name), len(body))
	return 0
}

// readPublicKeys reads each --public-key: the PEM itself, or a file that
// holds it.
func readPublicKeys(keyArgs []string) ([]*rsa.PublicKey, error) {
	var keys []*rsa.PublicKey
	for _, ka := range keyArgs {
		data := []byte(ka)
		if !strings.Contains(ka, "-----BEGIN") {
			var err error
			if data, err = os.ReadFile(ka); err != nil {
				return nil, err
			}
		}
		k, err := verify.ParseRSAPublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", ka, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// readBody reads the file name, or stdin for "-".
func readBody(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}
