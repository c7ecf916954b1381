package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

// timerRouterConfig is the router behind the admin API the timers tests
// call: a rule with unless:, whose deliveries wait an hour.
const timerRouterConfig = `
admin:
  tokens:
    - {name: viewer, token: "${VIEWER}", scopes: [read]}
    - {name: ops, token: "${OPS}", scopes: [read, replay]}
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUBKEY}"}]}
sinks:
  - {name: support-slack, type: fake}
  - {name: pager, type: fake}
rules:
  - name: missed
    when: event == "conversation.missed"
    unless: {when: 'event == "conversation.attender.updated"', same: [entity_id], within: 1h}
    to: [{sink: support-slack, text: x, delay: 10m}, {sink: pager, text: x}]
`

// timerAPI serves the real admin API over a router on a SQLite store
// that holds two waiting timers (chats c1 and c2, missed a minute
// apart), and returns its address and the store.
func timerAPI(t *testing.T) (string, router.Store) {
	t.Helper()
	addr, st := adminAPI(t, timerRouterConfig)
	// Stored as the router stores them (see dispatch's ingest), without
	// a signed request: what is listed is the store's business.
	t0 := time.Now().UTC().Truncate(time.Second)
	for i, chat := range []string{"c1", "c2"} {
		at := t0.Add(time.Duration(i) * time.Minute)
		ev := &router.EventRecord{Source: "siq", ID: "conversation.missed:" + chat + ":1", Name: "conversation.missed", ReceivedAt: at,
			Headers: map[string]string{}, Body: []byte(`{}`), Matched: []string{"missed"}}
		key := `["missed","` + chat + `"]`
		ds := []router.NewDelivery{
			{ID: "d-" + chat + "-0", Rule: "missed", Route: 0, Sink: "support-slack", NextAttemptAt: at.Add(10 * time.Minute), TimerKey: key},
			{ID: "d-" + chat + "-1", Rule: "missed", Route: 1, Sink: "pager", NextAttemptAt: at.Add(time.Hour), TimerKey: key},
		}
		if _, err := st.Ingest(context.Background(), ev, ds); err != nil {
			t.Fatal(err)
		}
	}
	return addr, st
}

// TestTimers: list and cancel through the real API, the token with the
// scope each needs taken from the config (-c), a read-only token's
// refusal and an unknown id as exit code 1, usage errors as 2.
func TestTimers(t *testing.T) {
	addr, st := timerAPI(t)
	clearAdminEnv(t)
	cfg := filepath.Join(t.TempDir(), "rules.yaml")
	conf := "server: {admin_listen: \"" + addr + "\"}\nadmin:\n  tokens:\n" +
		"    - {name: viewer, token: \"${CLI_TEST_VIEW_TOKEN}\", scopes: [read]}\n" +
		"    - {name: ops, token: \"${CLI_TEST_OPS_TOKEN}\", scopes: [read, replay]}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLI_TEST_VIEW_TOKEN", silenceViewer)
	t.Setenv("CLI_TEST_OPS_TOKEN", silenceOps)

	code, out, errs := runCmd(cmdTimers, "list", "-c", cfg)
	t.Logf("list:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"ID", "RULE", "SAME", "EVENT", "STARTED", "DUE", "WAITING"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("list header %q lacks %s", lines[0], want)
		}
	}
	// Earliest due first; the same: values beside their expression.
	for i, chat := range []string{"c1", "c2"} {
		row := lines[i+1]
		if !strings.HasPrefix(row, "t_") || !strings.Contains(row, " missed ") || !strings.Contains(row, `entity_id="`+chat+`"`) ||
			!strings.Contains(row, "siq/conversation.missed:"+chat+":1") || !strings.HasSuffix(row, "support-slack, pager") {
			t.Errorf("row %d: %q", i+1, row)
		}
	}

	code, out, errs = runCmd(cmdTimers, "list", "--json", "-c", cfg)
	var items []timer
	if code != 0 || json.Unmarshal([]byte(out), &items) != nil || len(items) != 2 || items[0].EventID != "conversation.missed:c1:1" ||
		len(items[0].Deliveries) != 2 || items[0].Same[0].Expr != "entity_id" {
		t.Fatalf("list --json: exit %d\n%s%s", code, out, errs)
	}
	id := items[0].ID

	// A token without the replay scope lists, and is refused the cancel.
	if code, _, errs := runCmd(cmdTimers, "cancel", id, "-c", cfg, "--token-name", "viewer"); code != 1 || !strings.Contains(errs, "403 Forbidden: this token lacks the replay scope") {
		t.Errorf("cancel with the viewer token: exit %d %s", code, errs)
	}

	code, out, errs = runCmd(cmdTimers, "cancel", id, "-c", cfg)
	if code != 0 || !strings.HasPrefix(out, "cancelled timer "+id+" of rule missed (entity_id=\"c1\", event siq/conversation.missed:c1:1): 2 waiting deliveries will not be sent") {
		t.Errorf("cancel: exit %d\n%s%s", code, out, errs)
	}
	for _, d := range []string{"d-c1-0", "d-c1-1"} {
		if rec, err := st.GetDelivery(context.Background(), d); err != nil || rec.Status != router.StatusCancelled || rec.LastError != "cancelled by operator ops" {
			t.Errorf("%s after cancel: %+v %v", d, rec, err)
		}
	}
	code, out, _ = runCmd(cmdTimers, "list", "-c", cfg)
	if code != 0 || strings.Contains(out, id) || !strings.Contains(out, "conversation.missed:c2:1") {
		t.Errorf("list after cancel: exit %d\n%s", code, out)
	}
	if code, _, errs := runCmd(cmdTimers, "cancel", "-c", cfg, id); code != 1 || !strings.Contains(errs, "404 Not Found: no such timer waiting") {
		t.Errorf("cancel again: exit %d %s", code, errs)
	}
	code, out, errs = runCmd(cmdTimers, "cancel", items[1].ID, "--json", "-c", cfg)
	var gone timer
	if code != 0 || json.Unmarshal([]byte(out), &gone) != nil || gone.ID != items[1].ID || gone.Cancelled != 2 {
		t.Errorf("cancel --json: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCmd(cmdTimers, "list", "-c", cfg); code != 0 || out != "no timers waiting\n" {
		t.Errorf("list with none: exit %d %q", code, out)
	}
	if code, out, _ := runCmd(cmdTimers, "list", "--json", "-c", cfg); code != 0 || out != "[]\n" {
		t.Errorf("list --json with none: exit %d %q", code, out)
	}

	// Usage errors: nothing is asked of the API.
	for _, args := range [][]string{{}, {"stop"}, {"list", "extra"}, {"cancel"}, {"cancel", "t_1", "t_2"}, {"list", "--state", "x"}} {
		if code, _, _ := runCmd(cmdTimers, append(args, "-c", cfg)...); code != 2 {
			t.Errorf("timers %v: exit %d, want 2", args, code)
		}
	}
}

// TestTimersHelp: the command is listed with the others, and its own
// help names every subcommand and scope.
func TestTimersHelp(t *testing.T) {
	code, out, _ := runCmd(Main, "help")
	if code != 0 || !strings.Contains(out, "timers list|cancel") {
		t.Errorf("hookroute help: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(cmdTimers, "help")
	for _, want := range []string{"timers list", "timers cancel ID", "replay scope", "--token-name"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("hookroute timers help: exit %d, lacks %q\n%s", code, want, out)
		}
	}
}
