// Package clikeys is the command line of outbound signing keys (README:
// Security, secured outbound webhooks): `hookroute keys generate|list|delete`, which talk to a running
// router's admin API (HOOKROUTE_ADMIN_URL, default http://127.0.0.1:8081,
// with the bearer token in HOOKROUTE_TOKEN) and so need none of the
// router's secrets; and `hookroute verify`, which checks a signature
// locally, for the people writing a receiver.
package clikeys

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookroute/hookroute/internal/adminapi"
	"github.com/hookroute/hookroute/router/verify"
)

const keysUsage = `usage:
  hookroute keys generate --sink NAME [--json]       create a key; prints its PEM public key
  hookroute keys list --sink NAME [--pem] [--json]   the sink's keys, oldest (the one that signs) first
  hookroute keys delete --sink NAME KEYID            delete a key; the next oldest signs from then on

A sink holds at most two keys. To rotate: generate a second key, give its
public key to the receivers, then delete the old one.

Flags for every subcommand:
  --screenname NAME   the router's server.screenname (default $HOOKROUTE_SCREENNAME or "default")
  --admin URL         the admin API (default $HOOKROUTE_ADMIN_URL or http://127.0.0.1:8081)
The bearer token is HOOKROUTE_TOKEN: generate needs the webhooks.create
scope, delete webhooks.delete, list read.
`

// key mirrors the key API's JSON.
type key struct {
	KeyID     string    `json:"key_id"`
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
	Signing   bool      `json:"signing"`
}

// parseInterleaved parses flags wherever they stand among the arguments
// (`delete KEYID --sink s` as well as `delete --sink s KEYID`) and returns
// the arguments that are not flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// Keys runs `hookroute keys ARGS`. It returns 0 on success, 1 when the
// API refused or could not be reached, 2 for a usage error.
func Keys(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, keysUsage)
		return 0
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sink := fs.String("sink", "", "sink `NAME` (an http sink with secured: true)")
	defScreen := os.Getenv("HOOKROUTE_SCREENNAME")
	if defScreen == "" {
		defScreen = "default"
	}
	screen := fs.String("screenname", defScreen, "the router's server.screenname")
	admin := fs.String("admin", "", "admin API `URL` (default $HOOKROUTE_ADMIN_URL or http://127.0.0.1:8081)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	withPEM := fs.Bool("pem", false, "print each public key (list)")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	want := map[string]int{"generate": 0, "list": 0, "delete": 1}
	n, known := want[sub]
	if !known || *sink == "" || len(rest) != n {
		fmt.Fprint(stderr, keysUsage)
		return 2
	}
	c, err := adminapi.New(*admin)
	if err != nil {
		fmt.Fprintln(stderr, "hookroute keys:", err)
		return 2
	}
	base := "/api/v2/" + url.PathEscape(*screen) + "/webhooks/" + url.PathEscape(*sink) + "/keys"
	switch sub {
	case "generate":
		err = generate(ctx, c, base, *sink, *asJSON, stdout, stderr)
	case "list":
		err = list(ctx, c, base, *asJSON, *withPEM, stdout)
	case "delete":
		if err = c.Do(ctx, http.MethodDelete, base+"/"+url.PathEscape(rest[0]), nil, nil); err == nil {
			fmt.Fprintf(stdout, "deleted key %s of sink %s\n", rest[0], *sink)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "hookroute keys:", err)
		return 1
	}
	return 0
}

// generate prints the public key alone on stdout, so that
// `hookroute keys generate --sink s > s.pem` gives a file to hand to the
// receivers; what it did goes to stderr.
func generate(ctx context.Context, c *adminapi.Client, base, sink string, asJSON bool, stdout, stderr io.Writer) error {
	var k key
	if err := c.Do(ctx, http.MethodPost, base, nil, &k); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(k)
	}
	when := "it signs from now on"
	if !k.Signing {
		when = "the older key keeps signing until you delete it (hookroute keys delete); give this public key to the receivers first"
	}
	fmt.Fprintf(stderr, "created key %s for sink %s: %s\n", k.KeyID, sink, when)
	_, err := io.WriteString(stdout, k.PublicKey)
	return err
}

func list(ctx context.Context, c *adminapi.Client, base string, asJSON, withPEM bool, w io.Writer) error {
	var out struct {
		Items []key `json:"items"`
	}
	if err := c.Do(ctx, http.MethodGet, base, nil, &out); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(out.Items)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tCREATED\tSIGNING")
	for _, k := range out.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.KeyID, k.CreatedAt.Local().Format("2006-01-02 15:04:05"), map[bool]string{true: "yes", false: "no"}[k.Signing])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if withPEM {
		for _, k := range out.Items {
			fmt.Fprintf(w, "\n# %s\n%s", k.KeyID, k.PublicKey)
		}
	}
	return nil
}

const verifyUsage = `usage: hookroute verify --public-key PEM --signature SIG [FILE]

Checks an x-siqsignature as a receiver of a secured hookroute (or SalesIQ)
webhook must: base64 of an RSA-SHA256 PKCS#1 v1.5 signature over the exact
bytes of the body. FILE holds the body as received (default, or "-": stdin).
--public-key is a file or the PEM itself ("PUBLIC KEY", "RSA PUBLIC KEY" or
bare base64 DER); give it twice to accept either key of a rotation.
Exit status: 0 valid, 1 invalid, 2 usage or unreadable input.
`

// keyFlags collects repeated --public-key values.
type keyFlags []string

func (k *keyFlags) String() string     { return strings.Join(*k, ",") }
func (k *keyFlags) Set(v string) error { *k = append(*k, v); return nil }

// Verify runs `hookroute verify ARGS`: 0 when the signature verifies, 1
// when it does not, 2 for a usage error or input it cannot read.
func Verify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	var keys []*rsa.PublicKey
	for _, ka := range keyArgs {
		data := []byte(ka)
		if !strings.Contains(ka, "-----BEGIN") {
			if data, err = os.ReadFile(ka); err != nil {
				fmt.Fprintln(stderr, "hookroute verify:", err)
				return 2
			}
		}
		k, err := verify.ParseRSAPublicKey(data)
		if err != nil {
			fmt.Fprintf(stderr, "hookroute verify: %s: %v\n", ka, err)
			return 2
		}
		keys = append(keys, k)
	}
	name := "-"
	if len(rest) == 1 {
		name = rest[0]
	}
	var body []byte
	if name == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(name)
	}
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

func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}
