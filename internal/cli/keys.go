package cli

// hookroute keys generate|list|delete: outbound signing keys (README:
// Security, secured outbound webhooks), through a running router's admin
// API, so they need none of the router's secrets: of the config file,
// only where the admin API listens, the screenname and the admin tokens.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

const keysUsage = `usage:
  hookroute keys generate --sink NAME [--json]       create a key; prints its PEM public key
  hookroute keys list --sink NAME [--pem] [--json]   the sink's keys, oldest (the one that signs) first
  hookroute keys delete --sink NAME KEYID            delete a key; the next oldest signs from then on

A sink holds at most two keys. To rotate: generate a second key, give its
public key to the receivers, then delete the old one.

--screenname NAME is the router's server.screenname, the {screenname} of
the key API's paths: default $HOOKROUTE_SCREENNAME, or the config's.
generate needs a token with the webhooks.create scope, delete
webhooks.delete, list read.
` + adminUsage

// key mirrors the key API's JSON.
type key struct {
	KeyID     string    `json:"key_id"`
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
	Signing   bool      `json:"signing"`
}

// keysScope is the token scope each subcommand needs.
var keysScope = map[string]string{"generate": "webhooks.create", "list": "read", "delete": "webhooks.delete"}

// cmdKeys runs `hookroute keys ARGS`. It returns 0 on success, 1 when the
// API refused or could not be reached, 2 for a usage error.
func cmdKeys(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, keysUsage)
		return 0
	}
	af := newAdminFlags("keys "+sub, keysUsage, stderr).withScreenname()
	sink := af.fs.String("sink", "", "sink `NAME` (an http sink with secured: true)")
	asJSON := af.fs.Bool("json", false, "print the API's JSON")
	withPEM := af.fs.Bool("pem", false, "print each public key (list)")
	rest, err := parseInterleaved(af.fs, args)
	if err != nil {
		return 2
	}
	scope, known := keysScope[sub]
	if !known || *sink == "" || len(rest) != map[string]int{"delete": 1}[sub] {
		fmt.Fprint(stderr, keysUsage)
		return 2
	}
	c, screen, code := af.connect("hookroute keys", scope, stderr)
	if code != 0 {
		return code
	}
	base := "/api/v2/" + url.PathEscape(screen) + "/webhooks/" + url.PathEscape(*sink) + "/keys"
	switch sub {
	case "generate":
		err = generateKey(ctx, c, base, *sink, *asJSON, stdout, stderr)
	case "list":
		err = listKeys(ctx, c, base, *asJSON, *withPEM, stdout)
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

// generateKey prints the public key alone on stdout, so that
// `hookroute keys generate --sink s > s.pem` gives a file to hand to the
// receivers; what it did goes to stderr.
func generateKey(ctx context.Context, c *adminClient, base, sink string, asJSON bool, stdout, stderr io.Writer) error {
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

func listKeys(ctx context.Context, c *adminClient, base string, asJSON, withPEM bool, w io.Writer) error {
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
