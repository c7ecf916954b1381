package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDeliveriesCLI drives `hookroute deliveries list|show|replay` against
// a running router: a sink answers 400 until fixed, its deliveries go
// dead, and the CLI finds, shows and replays them.
func TestDeliveriesCLI(t *testing.T) {
	var fixed atomic.Bool
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fixed.Load() {
			http.Error(w, `{"error":"bad mapping"}`, http.StatusBadRequest)
			return
		}
		got.Add(1)
	}))
	defer srv.Close()
	const config = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fakes listen on loopback
admin:
  tokens:
    - {name: ops, token: "${TEST_ADMIN_TOKEN}", scopes: [read, replay]}
    - {name: viewer, token: "${TEST_VIEW_TOKEN}", scopes: [read]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - {name: audit, type: http, url: "${TEST_HTTP_URL}"}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: audit}]}
`
	const token, viewer = "ops-token-0123456789abcdef", "view-token-0123456789abcdef"
	p := startRouter(t, t.TempDir(), config, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL,
		"TEST_ADMIN_TOKEN=" + token, "TEST_VIEW_TOKEN=" + viewer,
	})
	for _, id := range []string{"cli1", "cli2", "cli3"} {
		p.post("/hooks/salesiq", salesiqEvent(id, "1", "cli", 1), e2eKey)
	}
	eventually(t, 10*time.Second, "three dead deliveries", func() bool {
		return p.query(`SELECT count(*) FROM deliveries WHERE status='dead'`) == 3
	})
	env := map[string]string{"HOOKROUTE_TOKEN": token, "HOOKROUTE_ADMIN_URL": "http://" + p.admin}

	code, out, errs := runCLI(t, env, "deliveries", "list", "--status", "dead")
	if code != 0 || strings.Count(out, " dead ") != 3 || !strings.Contains(out, "LAST ERROR") || !strings.Contains(out, "400") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, env, "deliveries", "list", "--status", "dead", "--json")
	var items []struct{ ID string }
	if code != 0 || json.Unmarshal([]byte(out), &items) != nil || len(items) != 3 {
		t.Fatalf("list --json: exit %d\n%s", code, out)
	}
	code, out, errs = runCLI(t, env, "deliveries", "show", items[0].ID)
	if code != 0 || !strings.Contains(out, "status") || !strings.Contains(out, "bad mapping") {
		t.Fatalf("show: exit %d\n%s%s", code, out, errs)
	}
	// A read-only token may not replay.
	roEnv := map[string]string{"HOOKROUTE_TOKEN": viewer, "HOOKROUTE_ADMIN_URL": "http://" + p.admin}
	if code, out, errs = runCLI(t, roEnv, "deliveries", "replay", items[0].ID); code == 0 || !strings.Contains(errs+out, "403") {
		t.Fatalf("replay with a read-only token: exit %d %s", code, errs)
	}
	fixed.Store(true)
	code, out, errs = runCLI(t, env, "deliveries", "replay", items[0].ID)
	if code != 0 || !strings.Contains(out, "replayed") {
		t.Fatalf("replay one: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, env, "deliveries", "replay", "--status", "dead", "--sink", "audit")
	if code != 0 || !strings.Contains(out, "2 replayed") {
		t.Fatalf("replay by filter: exit %d\n%s%s", code, out, errs)
	}
	eventually(t, 10*time.Second, "all three delivered", func() bool { return got.Load() == 3 })
	if code, _, errs := runCLI(t, map[string]string{"HOOKROUTE_ADMIN_URL": "http://" + p.admin}, "deliveries", "list"); code != 2 || !strings.Contains(errs, "HOOKROUTE_TOKEN") {
		t.Errorf("list without a token: exit %d %s", code, errs)
	}
}

// runCLIInput is runCLI with stdin as the command's standard input ("":
// none, as under cron).
func runCLIInput(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestDeliveriesReplayGuards: `hookroute deliveries replay` replays
// nothing unless told what (IDs, a status and a sink, or --all), and a
// replay of more than 10 asks first on standard input: "n" or no answer
// replays nothing, "y" and --yes replay them all.
func TestDeliveriesReplayGuards(t *testing.T) {
	var fixed atomic.Bool
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fixed.Load() {
			http.Error(w, `{"error":"bad mapping"}`, http.StatusBadRequest)
			return
		}
		got.Add(1)
	}))
	defer srv.Close()
	const config = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fake listens on loopback
admin:
  tokens:
    - {name: ops, token: "${TEST_ADMIN_TOKEN}", scopes: [read, replay]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - {name: audit, type: http, url: "${TEST_HTTP_URL}"}
  - {name: archive, type: http, url: "${TEST_HTTP_URL}"}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: audit}, {sink: archive}]}
`
	const token = "ops-token-guards-0123456789"
	p := startRouter(t, t.TempDir(), config, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL, "TEST_ADMIN_TOKEN=" + token,
	})
	for i := range 6 {
		p.post("/hooks/salesiq", salesiqEvent(fmt.Sprintf("guard%d", i), "1", "cli", 1), e2eKey)
	}
	eventually(t, 10*time.Second, "twelve dead deliveries", func() bool {
		return p.query(`SELECT count(*) FROM deliveries WHERE status='dead'`) == 12
	})
	env := map[string]string{"HOOKROUTE_TOKEN": token, "HOOKROUTE_ADMIN_URL": "http://" + p.admin}
	replays := func() int { return p.query(`SELECT coalesce(sum(replays), 0) FROM deliveries`) }

	for _, args := range [][]string{{}, {"--status", "dead"}, {"--sink", "audit"}, {"--since", "24h"}} {
		code, out, errs := runCLIInput(t, env, "y\n", append([]string{"deliveries", "replay"}, args...)...)
		if code == 0 || !strings.Contains(errs, "--status dead --sink NAME") || !strings.Contains(errs, "--all") || !strings.Contains(errs, "ID...") {
			t.Errorf("replay %v: exit %d, want non-zero and the choices\n%s%s", args, code, out, errs)
		}
	}
	if n := replays(); n != 0 {
		t.Fatalf("refused replays replayed %d deliveries", n)
	}

	code, out, errs := runCLIInput(t, env, "n\n", "deliveries", "replay", "--all")
	if code == 0 || !strings.Contains(errs, "Replay 12 dead deliveries of every sink? [y/N]") || !strings.Contains(errs, "not confirmed") {
		t.Errorf("--all answered n: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLIInput(t, env, "", "deliveries", "replay", "--all")
	if code == 0 || !strings.Contains(errs, "Replay 12") || !strings.Contains(errs, "--yes") {
		t.Errorf("--all with no standard input: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLIInput(t, env, "", "deliveries", "replay", "--all", "--dry-run")
	if code != 0 || !strings.Contains(out, "12 deliveries would be replayed") || strings.Contains(errs, "[y/N]") {
		t.Errorf("--all --dry-run: exit %d\n%s%s", code, out, errs)
	}
	if n := replays(); n != 0 {
		t.Fatalf("unconfirmed replays replayed %d deliveries", n)
	}

	// --yes: no question, for scripts. The sink still refuses them: dead
	// again.
	code, out, errs = runCLIInput(t, env, "", "deliveries", "replay", "--all", "--yes")
	if code != 0 || !strings.Contains(out, "12 replayed") || strings.Contains(errs, "[y/N]") {
		t.Fatalf("--all --yes: exit %d\n%s%s", code, out, errs)
	}
	if n := replays(); n != 12 {
		t.Fatalf("--all --yes replayed %d deliveries, want 12", n)
	}
	eventually(t, 10*time.Second, "the twelve dead again", func() bool {
		return p.query(`SELECT count(*) FROM deliveries WHERE status='dead'`) == 12
	})

	// y on standard input: replayed, and this time delivered.
	fixed.Store(true)
	code, out, errs = runCLIInput(t, env, "y\n", "deliveries", "replay", "--all")
	if code != 0 || !strings.Contains(errs, "Replay 12 dead deliveries of every sink? [y/N]") || !strings.Contains(out, "12 replayed") {
		t.Fatalf("--all answered y: exit %d\n%s%s", code, out, errs)
	}
	eventually(t, 10*time.Second, "all twelve delivered", func() bool { return got.Load() == 12 })
	if n := replays(); n != 24 {
		t.Errorf("%d replays recorded, want 24", n)
	}
}
