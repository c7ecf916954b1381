package e2e

import (
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdminCLIReadsConfig: `hookroute deliveries` and `hookroute keys`
// given the router's own config file (-c) find the admin API, the
// screenname and a token there, with nothing in the environment but the
// variable of that token: not HOOKROUTE_ADMIN_URL, HOOKROUTE_TOKEN or
// HOOKROUTE_SCREENNAME, and none of the sources' and sinks' variables the
// router needed.
func TestAdminCLIReadsConfig(t *testing.T) {
	rcv := &signedReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	// The CLI reads the admin address from the file, so the router cannot
	// pick its port at start (startRouter's 127.0.0.2:0): a port free a
	// moment ago is written in the file instead.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	config := `
server: {listen: "{{LISTEN}}", admin_listen: "` + admin + `", screenname: acme}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}
admin:
  tokens:
    - {name: viewer, token: "${TEST_VIEW_TOKEN}", scopes: [read]}
    - {name: ops, token: "${TEST_ADMIN_TOKEN}", scopes: [read, replay, webhooks.create, webhooks.delete]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - {name: audit, type: http, url: "${TEST_HTTP_URL}", secured: true}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: audit}]}
`
	const token = "ops-token-config-0123456789"
	dir := t.TempDir()
	p := startRouter(t, dir, config, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL,
		"TEST_ADMIN_TOKEN=" + token, "TEST_VIEW_TOKEN=view-token-config-0123456789",
		"HOOKROUTE_MASTER_KEY=" + e2eMasterKey,
	})
	if p.admin != admin {
		t.Fatalf("the router's admin listener is %s, not %s", p.admin, admin)
	}
	cfg := filepath.Join(dir, "rules.yaml")
	env := map[string]string{"TEST_ADMIN_TOKEN": token}

	// The secured sink has no key yet: the delivery waits, pending.
	p.post("/hooks/salesiq", salesiqEvent("cfg1", "1", "from the config", 1), e2eKey)
	eventually(t, 10*time.Second, "the delivery stored", func() bool {
		return p.query(`SELECT count(*) FROM deliveries WHERE sink = 'audit'`) == 1
	})
	code, out, errs := runCLI(t, env, "deliveries", "list", "-c", cfg)
	if code != 0 || !strings.Contains(out, "LAST ERROR") || !strings.Contains(out, " audit ") {
		t.Fatalf("deliveries list -c: exit %d\n%s%s", code, out, errs)
	}

	// Under the config's screenname (the default one would be 404), with
	// the token that has webhooks.create.
	code, pem, errs := runCLI(t, env, "keys", "generate", "-c", cfg, "--sink", "audit")
	if code != 0 || !strings.HasPrefix(pem, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("keys generate -c: exit %d\n%s%s", code, pem, errs)
	}
	code, out, errs = runCLI(t, env, "keys", "list", "-c", cfg, "--sink", "audit")
	if code != 0 || !strings.Contains(out, "SIGNING") || strings.Count(out, "yes") != 1 {
		t.Fatalf("keys list -c: exit %d\n%s%s", code, out, errs)
	}
	eventually(t, 10*time.Second, "the waiting delivery signed and sent", func() bool { return len(rcv.received()) == 1 })
	if got := rcv.received()[0]; !salesIQVerifies(pem, got.body, got.signature) {
		t.Error("the delivery does not verify with the key the CLI generated")
	}

	// Without the token's variable the config has no usable token, and
	// the CLI says which variables would do.
	code, _, errs = runCLI(t, nil, "keys", "list", "-c", cfg, "--sink", "audit")
	if code != 2 || !strings.Contains(errs, "TEST_ADMIN_TOKEN is not set") || !strings.Contains(errs, "TEST_VIEW_TOKEN is not set") {
		t.Errorf("keys list -c with no token variable: exit %d %s", code, errs)
	}
}
