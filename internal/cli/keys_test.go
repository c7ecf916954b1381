package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hookroute/hookroute/router/verify"
)

// runCmd runs a command in process, with no standard input.
func runCmd(f command, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := f(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// fakeKeyAPI answers the key API as the router does, for one sink.
type fakeKeyAPI struct {
	mu   sync.Mutex
	reqs []string
}

func (f *fakeKeyAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.EscapedPath())
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer tok-0123456789abcdef" {
		w.WriteHeader(401)
		w.Write([]byte(`{"error":"unauthorized"}`))
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "POST /api/v2/acme/webhooks/audit/keys":
		w.WriteHeader(201)
		w.Write([]byte(`{"key_id":"k_2","public_key":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n","created_at":"2030-01-02T03:04:05Z","signing":false}`))
	case "GET /api/v2/acme/webhooks/audit/keys":
		w.Write([]byte(`{"items":[{"key_id":"k_1","public_key":"PEM1\n","created_at":"2030-01-01T00:00:00Z","signing":true},{"key_id":"k_2","public_key":"PEM2\n","created_at":"2030-01-02T00:00:00Z","signing":false}]}`))
	case "DELETE /api/v2/acme/webhooks/audit/keys/k_1":
		w.WriteHeader(204)
	case "DELETE /api/v2/acme/webhooks/audit/keys/k_9":
		w.WriteHeader(404)
		w.Write([]byte(`{"error":"sink \"audit\" has no key \"k_9\""}`))
	default:
		w.WriteHeader(404)
		w.Write([]byte(`{"error":"unknown screenname"}`))
	}
}

func TestKeys(t *testing.T) {
	api := &fakeKeyAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	t.Setenv("HOOKROUTE_ADMIN_URL", srv.URL)
	t.Setenv("HOOKROUTE_TOKEN", "tok-0123456789abcdef")
	t.Setenv("HOOKROUTE_SCREENNAME", "acme")

	code, out, errs := runCmd(cmdKeys, "generate", "--sink", "audit")
	if code != 0 || !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY-----") || !strings.Contains(errs, "k_2") || !strings.Contains(errs, "older key keeps signing") {
		t.Errorf("generate: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd(cmdKeys, "list", "--sink", "audit", "--pem")
	if code != 0 || !strings.Contains(out, "KEY ID") || !strings.Contains(out, "k_1") || !strings.Contains(out, "yes") || !strings.Contains(out, "PEM2") {
		t.Errorf("list: %d\n%s", code, out)
	}
	// Flags after the key id work too.
	if code, out, errs := runCmd(cmdKeys, "delete", "k_1", "--sink", "audit"); code != 0 || !strings.Contains(out, "deleted key k_1") {
		t.Errorf("delete: %d %s%s", code, out, errs)
	}
	if code, _, errs := runCmd(cmdKeys, "delete", "--sink", "audit", "k_9"); code != 1 || !strings.Contains(errs, `no key "k_9"`) {
		t.Errorf("delete unknown: %d %s", code, errs)
	}
	if code, _, errs := runCmd(cmdKeys, "list", "--sink", "audit", "--screenname", "other"); code != 1 || !strings.Contains(errs, "404") {
		t.Errorf("other screenname: %d %s", code, errs)
	}
	for _, args := range [][]string{{}, {"generate"}, {"rotate", "--sink", "a"}, {"delete", "--sink", "a"}, {"list", "--sink", "a", "extra"}} {
		if code, _, _ := runCmd(cmdKeys, args...); code != 2 {
			t.Errorf("keys %v: exit %d, want 2", args, code)
		}
	}
	t.Setenv("HOOKROUTE_TOKEN", "")
	if code, _, errs := runCmd(cmdKeys, "list", "--sink", "audit"); code != 2 || !strings.Contains(errs, "HOOKROUTE_TOKEN") {
		t.Errorf("without a token: %d %s", code, errs)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.reqs) == 0 || api.reqs[0] != "POST /api/v2/acme/webhooks/audit/keys" {
		t.Errorf("requests: %v", api.reqs)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemOf := func(k *rsa.PrivateKey) string {
		der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	body := `{"event":"conversation.rated"}`
	sig, err := verify.SignSalesIQ(k1, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	k1File, k2File := write("k1.pem", pemOf(k1)), write("k2.pem", pemOf(k2))
	bodyFile, nlFile := write("body.json", body), write("body-nl.json", body+"\n")

	if code, out, errs := runCmd(cmdVerify, "--public-key", k1File, "--signature", sig, bodyFile); code != 0 || !strings.HasPrefix(out, "valid") {
		t.Errorf("valid: %d %s%s", code, out, errs)
	}
	// The PEM inline, and either key of a rotation.
	if code, out, _ := runCmd(cmdVerify, "--public-key", pemOf(k2), "--public-key", pemOf(k1), "--signature", sig, bodyFile); code != 0 {
		t.Errorf("two keys: %d %s", code, out)
	}
	if code, out, _ := runCmd(cmdVerify, "--public-key", k2File, "--signature", sig, bodyFile); code != 1 || !strings.HasPrefix(out, "invalid") {
		t.Errorf("other key: %d %s", code, out)
	}
	if code, out, _ := runCmd(cmdVerify, "--public-key", k1File, "--signature", sig, nlFile); code != 1 || !strings.Contains(out, "final newline") {
		t.Errorf("extra newline: %d %s", code, out)
	}
	if code, out, _ := runCmd(cmdVerify, "--public-key", k1File, "--signature", "not base64!", bodyFile); code != 1 {
		t.Errorf("garbage signature: %d %s", code, out)
	}
	for _, args := range [][]string{
		{"--signature", sig, bodyFile},
		{"--public-key", k1File, bodyFile},
		{"--public-key", filepath.Join(dir, "missing.pem"), "--signature", sig, bodyFile},
		{"--public-key", bodyFile, "--signature", sig, bodyFile},
		{"--public-key", k1File, "--signature", sig, filepath.Join(dir, "missing.json")},
		{"--public-key", k1File, "--signature", sig, bodyFile, bodyFile},
	} {
		if code, _, _ := runCmd(cmdVerify, args...); code != 2 {
			t.Errorf("verify %v: exit %d, want 2", args, code)
		}
	}
}
