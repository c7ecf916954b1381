package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
