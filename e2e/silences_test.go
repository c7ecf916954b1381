package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const silencesConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fake sink listens on loopback
admin:
  tokens:
    - {name: viewer, token: "${TEST_VIEW_TOKEN}", scopes: [read]}
    - {name: ops, token: "${TEST_ADMIN_TOKEN}", scopes: [read, replay, silence]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - {name: audit, type: http, url: "${TEST_HTTP_URL}", retry: {max_attempts: 3, initial: 50ms, max_interval: 100ms}}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: audit}]}
`

// silenceCall calls the admin API with a JSON body ("" for none).
func silenceCall(t *testing.T, p *routerProc, method, path, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+p.admin+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiSilence is a silence as the API answers it.
type apiSilence struct {
	ID        string
	State     string
	Comment   string
	CreatedBy string `json:"created_by"`
}

// eventDelivery is the one delivery of the event the router answered
// reply to, once it has left pending.
func eventDelivery(t *testing.T, p *routerProc, token, reply string) (id, status, lastError string) {
	t.Helper()
	path := "/api/events/" + replyID(t, reply) + "?source=salesiq"
	eventually(t, 5*time.Second, "the delivery of "+reply+" settled", func() bool {
		var ev struct {
			Deliveries []struct {
				ID, Status string
				LastError  string `json:"last_error"`
			}
		}
		adminGet(t, p, token, path, &ev)
		if len(ev.Deliveries) != 1 || ev.Deliveries[0].Status == "pending" {
			return false
		}
		id, status, lastError = ev.Deliveries[0].ID, ev.Deliveries[0].Status, ev.Deliveries[0].LastError
		return true
	})
	return id, status, lastError
}

// requestsFor is how many requests the sink got for delivery id (its
// Idempotency-Key).
func (f *fakeHTTPSink) requestsFor(id string) int {
	keys, _ := f.received()
	n := 0
	for _, k := range keys {
		if k == id {
			n++
		}
	}
	return n
}

// TestSilences drives silences against the real binary: one made through
// the API and one through `hookroute silences add -c`, each silencing the
// delivery of the event it matches while another event's goes out; a
// read-only token may list them and not make or expire them; expired
// (through the API and the CLI), they silence nothing more, and the
// replay of a silenced delivery reaches the sink exactly once.
func TestSilences(t *testing.T) {
	sink := &fakeHTTPSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	const token, viewer = "ops-silence-token-0123456789", "view-silence-token-0123456789"
	dir := t.TempDir()
	p := startRouter(t, dir, silencesConfig, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + srv.URL,
		"TEST_ADMIN_TOKEN=" + token, "TEST_VIEW_TOKEN=" + viewer,
	})
	// The CLI takes its tokens from the router's own file, the one with
	// the scope each subcommand needs. The address comes from the
	// environment: the file's admin_listen is port 0, picked at start.
	cfg := filepath.Join(dir, "rules.yaml")
	cliEnv := map[string]string{"TEST_ADMIN_TOKEN": token, "TEST_VIEW_TOKEN": viewer, "HOOKROUTE_ADMIN_URL": "http://" + p.admin}

	// Scopes: reading needs read, making and expiring silence.
	body := `{"matcher": "chat.feedback == \"quiet\"", "duration": "1h", "comment": "maintenance"}`
	if code, resp := silenceCall(t, p, "POST", "/api/silences", viewer, body); code != 403 || !strings.Contains(resp, "this token lacks the silence scope") {
		t.Errorf("POST with a read-only token: %d %s", code, resp)
	}
	if code, resp := silenceCall(t, p, "POST", "/api/silences", "", body); code != 401 {
		t.Errorf("POST without a token: %d %s", code, resp)
	}
	if code, resp := silenceCall(t, p, "POST", "/api/silences", token, `{"matcher": "chat.feedbak == \"quiet\"", "duration": "1h"}`); code != 400 ||
		!strings.Contains(resp, `"matcher: line 1, column 6: `) {
		t.Errorf("POST a bad matcher: %d %s", code, resp)
	}
	code, resp := silenceCall(t, p, "POST", "/api/silences", token, body)
	var byAPI apiSilence
	if code != 201 || json.Unmarshal([]byte(resp), &byAPI) != nil || byAPI.State != "active" || byAPI.CreatedBy != "ops" {
		t.Fatalf("POST: %d %s", code, resp)
	}
	code, out, errs := runCLI(t, cliEnv, "silences", "add", "-c", cfg, "--matcher", `sink == "audit" && chat.feedback == "hush"`,
		"--duration", "1h", "--comment", "from the CLI")
	if code != 0 || !strings.HasPrefix(out, "created silence s_") || !strings.Contains(out, "(active until ") {
		t.Fatalf("silences add: exit %d\n%s%s", code, out, errs)
	}
	byCLI := strings.Fields(out)[2]
	code, out, errs = runCLI(t, cliEnv, "silences", "list", "-c", cfg, "--state", "active")
	if code != 0 || !strings.Contains(out, byAPI.ID+"  active") || !strings.Contains(out, byCLI+"  active") || !strings.Contains(out, "from the CLI") {
		t.Fatalf("silences list: exit %d\n%s%s", code, out, errs)
	}

	// One event for each silence, one for neither.
	_, quiet := p.post("/hooks/salesiq", salesiqEvent("sil1", "1", "quiet", 1), e2eKey)
	_, hush := p.post("/hooks/salesiq", salesiqEvent("sil2", "1", "hush", 1), e2eKey)
	_, loud := p.post("/hooks/salesiq", salesiqEvent("sil3", "1", "loud", 1), e2eKey)
	quietID, status, why := eventDelivery(t, p, token, quiet)
	if status != "silenced" || !strings.HasPrefix(why, "silenced by "+byAPI.ID+" (until ") || !strings.Contains(why, `"maintenance"`) {
		t.Errorf("the quiet event's delivery: %s %q", status, why)
	}
	hushID, status, why := eventDelivery(t, p, token, hush)
	if status != "silenced" || !strings.HasPrefix(why, "silenced by "+byCLI) {
		t.Errorf("the hush event's delivery: %s %q", status, why)
	}
	loudID, status, _ := eventDelivery(t, p, token, loud)
	if status != "delivered" || sink.requestsFor(loudID) != 1 {
		t.Errorf("the loud event's delivery: %s, %d requests", status, sink.requestsFor(loudID))
	}
	if sink.requestsFor(quietID)+sink.requestsFor(hushID) != 0 {
		t.Fatal("a silenced delivery reached the sink")
	}

	// Expiring needs the silence scope too.
	if code, resp := silenceCall(t, p, "DELETE", "/api/silences/"+byAPI.ID, viewer, ""); code != 403 {
		t.Errorf("DELETE with a read-only token: %d %s", code, resp)
	}
	if code, _, errs := runCLI(t, cliEnv, "silences", "expire", byCLI, "-c", cfg, "--token-name", "viewer"); code != 1 || !strings.Contains(errs, "lacks the silence scope") {
		t.Errorf("silences expire with the viewer token: exit %d %s", code, errs)
	}
	code, resp = silenceCall(t, p, "DELETE", "/api/silences/"+byAPI.ID, token, "")
	var expired apiSilence
	if code != 200 || json.Unmarshal([]byte(resp), &expired) != nil || expired.State != "expired" {
		t.Fatalf("DELETE: %d %s", code, resp)
	}
	if code, out, errs := runCLI(t, cliEnv, "silences", "expire", byCLI, "-c", cfg); code != 0 || !strings.HasPrefix(out, "expired silence "+byCLI) {
		t.Fatalf("silences expire: exit %d\n%s%s", code, out, errs)
	}
	var list struct{ Items []apiSilence }
	adminGet(t, p, viewer, "/api/silences?state=active", &list)
	if len(list.Items) != 0 {
		t.Errorf("active silences after expiring both: %+v", list.Items)
	}

	// Expired, the silence mutes nothing more: the next quiet event goes
	// out (the router rereads the silences at once after a change).
	_, again := p.post("/hooks/salesiq", salesiqEvent("sil4", "1", "quiet", 1), e2eKey)
	if againID, status, why := eventDelivery(t, p, token, again); status != "delivered" || sink.requestsFor(againID) != 1 {
		t.Errorf("a quiet event after the expiry: %s %q", status, why)
	}

	// The silenced delivery, replayed, is sent once.
	if code, resp := silenceCall(t, p, "POST", "/api/deliveries/"+quietID+"/replay", token, ""); code != 200 {
		t.Fatalf("replay: %d %s", code, resp)
	}
	eventually(t, 5*time.Second, "the replayed delivery at the sink", func() bool { return sink.requestsFor(quietID) == 1 })
	eventually(t, 5*time.Second, "the replayed delivery recorded as delivered", func() bool {
		var d struct{ Status string }
		adminGet(t, p, token, "/api/deliveries/"+quietID, &d)
		return d.Status == "delivered"
	})
	time.Sleep(300 * time.Millisecond) // time for a second request that should not be
	if n := sink.requestsFor(quietID); n != 1 {
		t.Errorf("the replayed delivery reached the sink %d times, want 1", n)
	}
	_, bodies := sink.received()
	if n := len(bodies); n != 3 || !bytes.Contains(bodies[2], []byte(`"quiet"`)) {
		t.Errorf("the sink got %d requests (want loud, the quiet one after the expiry, and the replay)", n)
	}
	if n := sink.requestsFor(hushID); n != 0 {
		t.Errorf("the delivery left silenced reached the sink %d times", n)
	}
}
