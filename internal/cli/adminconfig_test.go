package cli

import (
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adminTestConfig is a router's config whose sources and sinks need
// variables this test never sets: the admin commands must not need them.
const adminTestConfig = `server:
  listen: "127.0.0.1:0"
  admin_listen: "{{ADMIN}}"
  screenname: acme
admin:
  tokens:
    - {name: viewer, token: "${CLI_TEST_VIEW_TOKEN}", scopes: [read]}
    - {name: ops, token: "${CLI_TEST_OPS_TOKEN}", scopes: [read, webhooks.create, webhooks.delete]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${CLI_TEST_UNSET_PUBLIC_KEY}"}]}
sinks:
  - {name: audit, type: http, url: "${CLI_TEST_UNSET_URL}", secured: true}
rules:
  - {name: all, when: "true", to: [{sink: audit}]}
`

// clearAdminEnv unsets what would override the config.
func clearAdminEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"HOOKROUTE_ADMIN_URL", "HOOKROUTE_TOKEN", "HOOKROUTE_SCREENNAME", "HOOKROUTE_CONFIG",
		"CLI_TEST_VIEW_TOKEN", "CLI_TEST_OPS_TOKEN", "CLI_TEST_UNSET_PUBLIC_KEY", "CLI_TEST_UNSET_URL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func writeAdminConfig(t *testing.T, dir, admin string) string {
	t.Helper()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(adminTestConfig, "{{ADMIN}}", admin)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKeysFromConfig: with -c, keys finds the admin API from
// server.admin_listen (0.0.0.0 is reached on loopback), the screenname
// from server.screenname and the token from admin.tokens: the first with
// the scope whose variable is set, unless --token-name or the environment
// says otherwise.
func TestKeysFromConfig(t *testing.T) {
	api := &fakeKeyAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	clearAdminEnv(t)
	cfg := writeAdminConfig(t, t.TempDir(), "0.0.0.0:"+port)
	const good = "tok-0123456789abcdef"

	// Only the ops token's variable is set: viewer, first with read, is
	// skipped.
	t.Setenv("CLI_TEST_OPS_TOKEN", good)
	if code, out, errs := runCmd(cmdKeys, "list", "-c", cfg, "--sink", "audit"); code != 0 || !strings.Contains(out, "k_1") {
		t.Fatalf("list with the ops token's variable alone: exit %d\n%s%s", code, out, errs)
	}
	// Both set: list takes viewer, the first with read (the fake refuses
	// it); generate needs webhooks.create, which only ops has.
	t.Setenv("CLI_TEST_VIEW_TOKEN", "view-0123456789abcdef")
	if code, _, errs := runCmd(cmdKeys, "list", "-c", cfg, "--sink", "audit"); code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("list with both tokens: exit %d %s, want viewer's token (401 here)", code, errs)
	}
	if code, _, errs := runCmd(cmdKeys, "list", "-c", cfg, "--sink", "audit", "--token-name", "ops"); code != 0 {
		t.Errorf("list --token-name ops: exit %d %s", code, errs)
	}
	if code, _, errs := runCmd(cmdKeys, "generate", "-c", cfg, "--sink", "audit"); code != 0 || !strings.Contains(errs, "created key k_2") {
		t.Errorf("generate: exit %d %s", code, errs)
	}
	// The environment comes before the config.
	t.Setenv("HOOKROUTE_SCREENNAME", "other")
	if code, _, errs := runCmd(cmdKeys, "list", "-c", cfg, "--sink", "audit", "--token-name", "ops"); code != 1 || !strings.Contains(errs, "unknown screenname") {
		t.Errorf("HOOKROUTE_SCREENNAME=other: exit %d %s", code, errs)
	}
	t.Setenv("HOOKROUTE_SCREENNAME", "")
	t.Setenv("HOOKROUTE_TOKEN", "wrong-0123456789abcdef")
	if code, _, errs := runCmd(cmdKeys, "generate", "-c", cfg, "--sink", "audit"); code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("HOOKROUTE_TOKEN set: exit %d %s, want its token (401 here)", code, errs)
	}
	t.Setenv("HOOKROUTE_TOKEN", "")

	api.mu.Lock()
	defer api.mu.Unlock()
	for _, r := range api.reqs {
		if !strings.Contains(r, "/api/v2/acme/") && !strings.Contains(r, "/api/v2/other/") {
			t.Errorf("request %s is not under the config's screenname", r)
		}
	}
}

// TestKeysConfigDefault: without -c, rules.yaml in the working directory
// is read when it exists.
func TestKeysConfigDefault(t *testing.T) {
	api := &fakeKeyAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	clearAdminEnv(t)
	dir := t.TempDir()
	writeAdminConfig(t, dir, srv.Listener.Addr().String())
	t.Setenv("CLI_TEST_OPS_TOKEN", "tok-0123456789abcdef")
	t.Chdir(dir)
	if code, out, errs := runCmd(cmdKeys, "list", "--sink", "audit"); code != 0 || !strings.Contains(out, "k_1") {
		t.Errorf("list with ./rules.yaml: exit %d\n%s%s", code, out, errs)
	}
	os.Remove(filepath.Join(dir, "rules.yaml"))
	if code, _, errs := runCmd(cmdKeys, "list", "--sink", "audit"); code != 2 || !strings.Contains(errs, "HOOKROUTE_TOKEN") {
		t.Errorf("list without a config or a token: exit %d %s", code, errs)
	}
}

// TestAdminConfigProblems: what the admin commands cannot work with is
// said, with the exit code of its kind.
func TestAdminConfigProblems(t *testing.T) {
	clearAdminEnv(t)
	dir := t.TempDir()
	cfg := writeAdminConfig(t, dir, "127.0.0.1:8081")
	for _, c := range []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"no token variable set", []string{"deliveries", "list", "-c", cfg}, 2,
			[]string{"HOOKROUTE_TOKEN", "read scope", "viewer: " + cfg + ":7:", "CLI_TEST_VIEW_TOKEN is not set", "CLI_TEST_OPS_TOKEN is not set"}},
		{"no token with the scope", []string{"deliveries", "replay", "-c", cfg, "ID1"}, 2,
			[]string{"HOOKROUTE_TOKEN", "has no admin token with the replay scope"}},
		{"unknown token name", []string{"deliveries", "list", "-c", cfg, "--token-name", "nope"}, 2,
			[]string{`has no admin token named "nope"`}},
		{"a config file that is missing", []string{"deliveries", "list", "-c", filepath.Join(dir, "missing.yaml")}, 1,
			[]string{"missing.yaml", "no such file"}},
		{"token variable unset", []string{"keys", "list", "-c", cfg, "--sink", "audit", "--token-name", "ops"}, 2,
			[]string{"admin token ops:", "CLI_TEST_OPS_TOKEN is not set"}},
	} {
		code, out, errs := runCmd(commands[c.args[0]], c.args[1:]...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", c.name, code, c.code, out, errs)
		}
		for _, w := range c.wants {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, errs)
			}
		}
	}

	t.Setenv("CLI_TEST_OPS_TOKEN", "tok-0123456789abcdef")
	for listen, want := range map[string]string{
		"127.0.0.2:0": "port 0 is picked when the router starts",
		"":            "is empty, so the router serves no admin API",
		"nonsense":    "want host:port",
	} {
		cfg := writeAdminConfig(t, dir, listen)
		code, _, errs := runCmd(cmdDeliveries, "list", "-c", cfg)
		if code != 2 || !strings.Contains(errs, cfg+":3:17: server.admin_listen: "+want) || !strings.Contains(errs, "--admin URL") {
			t.Errorf("admin_listen %q: exit %d %s", listen, code, errs)
		}
	}
}

func TestAdminURL(t *testing.T) {
	for listen, want := range map[string]string{
		"0.0.0.0:9091":   "http://127.0.0.1:9091",
		"[::]:9091":      "http://127.0.0.1:9091",
		":9091":          "http://127.0.0.1:9091",
		"127.0.0.2:9091": "http://127.0.0.2:9091",
		"[::1]:9091":     "http://[::1]:9091",
		"localhost:9091": "http://localhost:9091",
	} {
		s := &adminSettings{file: "rules.yaml", listen: listen}
		if got, err := s.adminURL(); got != want || err != nil {
			t.Errorf("admin_listen %q: %q, %v; want %q", listen, got, err, want)
		}
	}
}
