package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/sqlite"
)

// silenceRouterConfig is the router behind the admin API the silences
// tests call: a salesiq source alone, so that a matcher naming a field
// SalesIQ events lack does not compile (a generic source would take it).
const silenceRouterConfig = `
admin:
  tokens:
    - {name: viewer, token: "${VIEWER}", scopes: [read]}
    - {name: ops, token: "${OPS}", scopes: [read, silence]}
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUBKEY}"}]}
sinks:
  - {name: support-slack, type: fake}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: support-slack, text: x}]}
`

const silenceOps, silenceViewer = "ops-silence-0123456789", "view-silence-0123456789"

// silenceAPI serves the real admin API for the silences tests and
// returns its address.
func silenceAPI(t *testing.T) string {
	t.Helper()
	addr, _ := adminAPI(t, silenceRouterConfig)
	return addr
}

// adminAPI serves the real admin API (admin.Handler over a router on a
// SQLite store) for conf, with the tokens ${OPS} and ${VIEWER}, and
// returns its address and the store: what the commands print comes from
// the API's own answers, not from a fake's idea of them.
func adminAPI(t *testing.T, conf string) (string, *sqlite.Store) {
	t.Helper()
	rt, _ := testkit.MustLoad(t, rules.Load, conf, map[string]string{"OPS": silenceOps, "VIEWER": silenceViewer})
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := dispatch.New(rt, st, dispatch.Options{})
	srv := httptest.NewServer(admin.Handler(r, prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), st
}

// TestSilences: add, list and expire through the real API, the token
// with the scope each needs taken from the config (-c), the API's
// refusals (a bad matcher with a caret under its column, a read-only
// token) as exit code 1, and usage errors as 2 before any request.
func TestSilences(t *testing.T) {
	addr := silenceAPI(t)
	clearAdminEnv(t)
	cfg := filepath.Join(t.TempDir(), "rules.yaml")
	// Only what the admin commands read; viewer comes first, so that list
	// takes it and add must skip it for the one with the silence scope.
	conf := "server: {admin_listen: \"" + addr + "\"}\nadmin:\n  tokens:\n" +
		"    - {name: viewer, token: \"${CLI_TEST_VIEW_TOKEN}\", scopes: [read]}\n" +
		"    - {name: ops, token: \"${CLI_TEST_OPS_TOKEN}\", scopes: [read, silence]}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLI_TEST_VIEW_TOKEN", silenceViewer)
	t.Setenv("CLI_TEST_OPS_TOKEN", silenceOps)

	code, out, errs := runCmd(cmdSilences, "list", "-c", cfg)
	if code != 0 || out != "no silences\n" {
		t.Fatalf("list with none: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = runCmd(cmdSilences, "add", "-c", cfg, "--matcher", `chat.ratng == "sad"`, "--duration", "1h")
	if code != 1 || out != "" ||
		!strings.Contains(errs, "hookroute silences: 400 Bad Request: matcher: line 1, column 6: type router.SalesIQChat has no field ratng") ||
		!strings.HasSuffix(errs, "\n  chat.ratng == \"sad\"\n       ^\n") {
		t.Errorf("a bad matcher: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("a bad matcher:\n%s", errs)

	code, out, errs = runCmd(cmdSilences, "add", "-c", cfg, "--matcher", `sink == "support-slack" && chat.rating == "sad"`,
		"--duration", "2h", "--comment", "deploy\tof the\nbot")
	if code != 0 || !strings.HasPrefix(out, "created silence s_") || !strings.Contains(out, "(active until ") {
		t.Fatalf("add: exit %d\n%s%s", code, out, errs)
	}
	active := strings.Fields(out)[2]

	start := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	code, out, errs = runCmd(cmdSilences, "add", "--json", "-c", cfg, "--matcher", `source == "siq"`,
		"--starts-at", start.Format(time.RFC3339), "--ends-at", start.Add(time.Hour).Format(time.RFC3339))
	var pending silence
	if code != 0 || json.Unmarshal([]byte(out), &pending) != nil || pending.State != "pending" || pending.CreatedBy != "ops" ||
		!pending.StartsAt.Equal(start) || !pending.EndsAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("add --json, pending: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = runCmd(cmdSilences, "list", "-c", cfg)
	t.Logf("list:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"ID", "STATE", "UNTIL", "CREATED BY", "MATCHER", "COMMENT"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("list header %q lacks %s", lines[0], want)
		}
	}
	// Newest first; the comment's tab and newline do not break the row.
	if !strings.HasPrefix(lines[1], pending.ID+"  pending from ") || !strings.HasPrefix(lines[2], active+"  active ") ||
		!strings.Contains(lines[2], ` ops `) || !strings.Contains(lines[2], `sink == "support-slack" && chat.rating == "sad"`) ||
		!strings.HasSuffix(lines[2], "deploy of the bot") {
		t.Errorf("list rows:\n%s", out)
	}

	code, out, errs = runCmd(cmdSilences, "list", "-c", cfg, "--state", "active", "--json")
	var items []silence
	if code != 0 || json.Unmarshal([]byte(out), &items) != nil || len(items) != 1 || items[0].ID != active {
		t.Errorf("list --state active --json: exit %d\n%s%s", code, out, errs)
	}

	// A token without the silence scope reads, and is refused the rest.
	if code, _, errs := runCmd(cmdSilences, "expire", active, "-c", cfg, "--token-name", "viewer"); code != 1 || !strings.Contains(errs, "403 Forbidden: this token lacks the silence scope") {
		t.Errorf("expire with the viewer token: exit %d %s", code, errs)
	}

	code, out, errs = runCmd(cmdSilences, "expire", active, "-c", cfg)
	if code != 0 || !strings.HasPrefix(out, "expired silence "+active+" at ") || !strings.Contains(out, "stay silenced until replayed") {
		t.Errorf("expire: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd(cmdSilences, "list", "-c", cfg, "--state", "expired")
	if code != 0 || !strings.Contains(out, active+"  expired ") || strings.Contains(out, pending.ID) {
		t.Errorf("list --state expired: exit %d\n%s", code, out)
	}
	if code, _, errs := runCmd(cmdSilences, "expire", "-c", cfg, "s_nope"); code != 1 || !strings.Contains(errs, "404 Not Found: no such silence") {
		t.Errorf("expire unknown: exit %d %s", code, errs)
	}

	// Usage errors: nothing is asked of the API, whatever it would say.
	for _, args := range [][]string{
		{},
		{"mute"},
		{"add", "--duration", "1h"},
		{"add", "--matcher", "true"},
		{"add", "--matcher", "true", "--duration", "1h", "--ends-at", "2030-01-01T00:00:00Z"},
		{"add", "--matcher", "true", "--duration", "soon"},
		{"add", "--matcher", "true", "--duration", "-1h"},
		{"add", "--matcher", "true", "--ends-at", "tomorrow"},
		{"add", "--matcher", "true", "--duration", "1h", "--starts-at", "2030-01-01"},
		{"add", "--matcher", "true", "--duration", "1h", "extra"},
		{"list", "--state", "muted"},
		{"list", "extra"},
		{"expire"},
		{"expire", "s_1", "s_2"},
		{"list", "--matcher", "true"},
	} {
		if code, _, _ := runCmd(cmdSilences, append(args, "-c", cfg)...); code != 2 {
			t.Errorf("silences %v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := runCmd(cmdSilences, "add", "--matcher", "true", "-c", cfg); !strings.Contains(errs, "--duration D or --ends-at T") {
		t.Errorf("add without an end: exit %d %s", code, errs)
	}
}

// TestSilencesHelp: the command is listed with the others, and its own
// help names every subcommand.
func TestSilencesHelp(t *testing.T) {
	code, out, _ := runCmd(Main, "help")
	if code != 0 || !strings.Contains(out, "silences add|list|expire") {
		t.Errorf("hookroute help: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(cmdSilences, "help")
	for _, want := range []string{"silences add --matcher", "silences list", "silences expire ID", "silence scope", "--token-name"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("hookroute silences help: exit %d, lacks %q\n%s", code, want, out)
		}
	}
}
