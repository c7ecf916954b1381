package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runCLI runs the binary with args in the repository root, with env added
// to a clean environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
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

// TestExampleConfigPasses keeps rules.example.yaml honest: it must pass
// check with no environment set, as the README promises.
func TestExampleConfigPasses(t *testing.T) {
	code, out, errs := runCLI(t, nil, "check", "-c", "rules.example.yaml")
	if code != 0 {
		t.Fatalf("check rules.example.yaml: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "ok: 1 sources, 5 sinks, 3 rules") {
		t.Fatalf("check output:\n%s", out)
	}
	// With the variables set, the optional sinks switch on.
	code, out, errs = runCLI(t, map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "AUDIT_URL": "https://audit.example/hooks", "ZENDESK_TOKEN": "zd-1", "JIRA_API_TOKEN": "jira-1"}, "check", "--config", "rules.example.yaml")
	if code != 0 || strings.Contains(out, "switched off") {
		t.Fatalf("check with variables: exit %d\n%s%s", code, out, errs)
	}
}

// TestExampleConfigDocumented checks that rules.example.yaml explains
// itself: every key line carries a comment, or the line above does.
func TestExampleConfigDocumented(t *testing.T) {
	b, err := os.ReadFile("../rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		s := strings.TrimSpace(l)
		if s == "" || strings.HasPrefix(s, "#") || strings.Contains(l, " # ") {
			continue
		}
		if i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			continue
		}
		// Keys whose meaning is the line's own content are allowed bare.
		if strings.HasPrefix(s, "- name:") || s == "to:" || strings.HasPrefix(s, "- sink:") || strings.HasPrefix(s, "text:") || strings.HasPrefix(s, "multiplier:") || strings.HasPrefix(s, "source:") || strings.HasPrefix(s, "when:") || strings.HasPrefix(s, "type:") || strings.HasPrefix(s, "subject:") || strings.HasPrefix(s, "dedup_key:") {
			continue
		}
		t.Errorf("rules.example.yaml:%d: undocumented line: %s", i+1, s)
	}
}

func TestCheckReportsTypoWithPosition(t *testing.T) {
	b, err := os.ReadFile("../rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), `chat.rating == "sad"`, `chat.ratng == "sad"`, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	// The demo key file is relative to the config: copy it along.
	os.MkdirAll(filepath.Join(dir, "examples/keys"), 0o755)
	key, _ := os.ReadFile("../examples/keys/demo-salesiq-public.pem")
	os.WriteFile(filepath.Join(dir, "examples/keys/demo-salesiq-public.pem"), key, 0o600)

	code, _, errs := runCLI(t, nil, "check", "-c", path)
	line := 0
	for i, l := range strings.Split(bad, "\n") {
		if strings.Contains(l, "chat.ratng") {
			line = i + 1
		}
	}
	want := path + ":" + itoa(line) + ":"
	if code != 1 || !strings.Contains(errs, want) || !strings.Contains(errs, "rules[0].when: type router.SalesIQChat has no field ratng") {
		t.Fatalf("check: exit %d, stderr:\n%s\nwant %s… rules[0].when: … ratng", code, errs, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestUsage(t *testing.T) {
	if code, _, _ := runCLI(t, nil); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, nil, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code, out, _ := runCLI(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "hookroute ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

// TestAdminListenerBeyondLoopbackRefused: an admin listener the network
// can reach, with no admin token, is refused by check and by serve (which
// never starts listening), at the admin_listen value, with the two ways
// out; with a token the same config passes.
func TestAdminListenerBeyondLoopbackRefused(t *testing.T) {
	dir := t.TempDir()
	config := `server:
  listen: "127.0.0.1:0"
  admin_listen: "0.0.0.0:0"
store: {url: "sqlite:` + filepath.Join(dir, "hookroute.db") + `"}
sources:
  - {name: open, type: none}
sinks:
  - {name: console, type: log}
rules:
  - {name: all, when: "true", to: [{sink: console}]}
`
	path := filepath.Join(dir, "rules.yaml")
	writeFile(t, path, config)
	want := path + ":3:17: server.admin_listen: the admin listener would be reachable from the network with no admin token"
	code, out, errs := runCLI(t, nil, "check", "-c", path)
	if code != 1 || !strings.Contains(errs, want) || !strings.Contains(errs, "or listen on loopback (127.0.0.1:PORT") {
		t.Errorf("check: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %s…", code, out, errs, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serve := exec.CommandContext(ctx, binPath, "serve", "-c", path)
	serve.Env = []string{"PATH=" + os.Getenv("PATH")}
	outb, err := serve.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(outb), want) || strings.Contains(string(outb), `"listening"`) {
		t.Errorf("serve: %v, output:\n%s\nwant exit 1 and %s…, before listening", err, outb, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "hookroute.db")); err == nil {
		t.Errorf("serve created the store before refusing the config")
	}

	withToken := filepath.Join(dir, "with-token.yaml")
	writeFile(t, withToken, config+"admin:\n  tokens: [{name: ops, token: '${ADMIN_TOKEN}', scopes: [read]}]\n")
	code, out, errs = runCLI(t, map[string]string{"ADMIN_TOKEN": "0123456789abcdef0123"}, "check", "-c", withToken)
	if code != 0 {
		t.Errorf("check with an admin token: exit %d\n%s%s", code, out, errs)
	}
}
