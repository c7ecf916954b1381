package cli

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// The end-to-end tests (e2e/trial_test.go) run these commands through the
// binary; these run them in process, on the example config.

const exampleConfig = "../../rules.example.yaml"

func TestTrialExplainsAMiss(t *testing.T) {
	code, out, errs := runCmd(cmdTrial, "--event", "../../examples/events/conversation-rated-happy.json", "-c", exampleConfig)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, `chat.rating == "sad" → "happy" == "sad" → false`) || !strings.Contains(out, "routes: none (no rule matched)") {
		t.Errorf("output:\n%s", out)
	}
}

func TestTrialUsage(t *testing.T) {
	if code, _, errs := runCmd(cmdTrial, "-c", exampleConfig); code != 2 || !strings.Contains(errs, "usage: hookroute trial") {
		t.Errorf("no event: exit %d, %s", code, errs)
	}
	// The event may be given as the argument, too.
	if code, out, errs := runCmd(cmdTrial, "-c", exampleConfig, "../../examples/events/conversation-missed.json"); code != 0 || !strings.Contains(out, "  match     missed-chat") {
		t.Errorf("event as argument: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCmd(cmdTrial, "-c", exampleConfig, "--source", "nope", "../../examples/events/conversation-missed.json"); code != 1 || !strings.Contains(errs, `no source "nope"`) {
		t.Errorf("unknown source: exit %d, %s", code, errs)
	}
}

func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.yaml")
	events, _ := filepath.Abs("../../examples/events")
	body := "tests:\n  - name: sad\n    event_file: " + events + "/conversation-rated-sad.json\n    expect: {match: [sad-chat], no_match: [missed-chat]}\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd(cmdTest, file, "-c", exampleConfig); code != 0 || !strings.HasSuffix(out, "1 passed, 0 failed\n") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(body, "match: [sad-chat]", "match: [missed-chat]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(cmdTest, file, "-c", exampleConfig)
	if code != 1 || !strings.Contains(out, "rule missed-chat: want match, got no match") || !strings.HasSuffix(out, "0 passed, 1 failed\n") {
		t.Errorf("exit %d\n%s", code, out)
	}
	// The example's own tests: run when no file is given.
	if code, out, errs := runCmd(cmdTest, "-c", exampleConfig); code != 0 || !strings.HasSuffix(out, "2 passed, 0 failed\n") {
		t.Errorf("the example's tests: exit %d\n%s%s", code, out, errs)
	}
	// A config without tests: and no file is a usage error.
	ex, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := filepath.Abs("../../examples/keys")
	noTests := strings.Replace(string(ex[:strings.Index(string(ex), "\ntests:")]), "file: examples/keys", "file: "+keys, 1)
	bare := filepath.Join(dir, "bare.yaml")
	if err := os.WriteFile(bare, []byte(noTests), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(cmdTest, "-c", bare); code != 2 || !strings.Contains(errs, "has no tests: section") {
		t.Errorf("no tests anywhere: exit %d, %s", code, errs)
	}
}

func TestParseInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c := fs.String("c", "", "")
	v := fs.Bool("v", false, "")
	rest, err := parseInterleaved(fs, []string{"a.yaml", "-c", "cfg", "b.yaml", "-v", "--", "-c"})
	if err != nil || *c != "cfg" || !*v || !slices.Equal(rest, []string{"a.yaml", "b.yaml", "-c"}) {
		t.Errorf("rest %q, c %q, v %t, err %v", rest, *c, *v, err)
	}
}

// TestTrialSend delivers for real, through the config's egress.allow, once.
func TestTrialSend(t *testing.T) {
	var hits atomic.Int64
	var key atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		key.Store(r.Header.Get("Idempotency-Key"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rules.yaml")
	pub, _ := filepath.Abs("../../examples/keys/demo-salesiq-public.pem")
	body := `
egress: {allow: ["127.0.0.1/32"]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{file: ` + pub + `}]}
sinks:
  - {name: audit, type: http, url: "` + srv.URL + `/hook"}
rules:
  - {name: sad-chat, when: 'chat.rating == "sad"', to: [{sink: audit}]}
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	event := "../../examples/events/conversation-rated-sad.json"
	if code, out, errs := runCmd(cmdTrial, "-c", cfg, "--event", event); code != 0 || hits.Load() != 0 || !strings.Contains(out, "POST "+srv.URL+"/hook") {
		t.Fatalf("trial without --send: exit %d, %d requests\n%s%s", code, hits.Load(), out, errs)
	}
	code, out, errs := runCmd(cmdTrial, "-c", cfg, "--event", event, "--send")
	if code != 0 || hits.Load() != 1 || !strings.Contains(out, "sent: status 200") || !strings.HasPrefix(key.Load().(string), "trial-") {
		t.Fatalf("trial --send: exit %d, %d requests\n%s%s", code, hits.Load(), out, errs)
	}
}
