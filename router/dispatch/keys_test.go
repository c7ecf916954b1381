package dispatch_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/sqlite"
	"github.com/hookroute/hookroute/router/verify"
)

// signerFactory builds "signer" sinks: with secured: true they sign what
// they "send" with Delivery.SigningKey, as the http sink does, and record
// it, so that a receiver written from the SalesIQ description can check
// it.
type signerFactory struct {
	mu    sync.Mutex
	sinks map[string]*signerSink
}

type signerSink struct {
	secured bool
	mu      sync.Mutex
	sent    []signedRequest
	keys    []*rsa.PrivateKey // every key handed over, for the leak checks
}

// signedRequest is what a receiver would see: the body bytes and the
// x-siqsignature header.
type signedRequest struct {
	id, signature string
	body          []byte
}

func (s *signerSink) Secured() bool { return s.secured }

func (s *signerSink) Deliver(_ context.Context, d *router.Delivery) (router.Result, error) {
	body := []byte(`{"delivery":"` + d.ID + `","text":"` + d.Fields["text"] + `"}`)
	req := signedRequest{id: d.ID, body: body}
	if s.secured {
		if d.SigningKey == nil {
			return router.Result{}, router.Permanent(errors.New("secured sink handed a delivery without a key"))
		}
		sig, err := verify.SignSalesIQ(d.SigningKey, body)
		if err != nil {
			return router.Result{}, err
		}
		req.signature = sig
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, req)
	if d.SigningKey != nil {
		s.keys = append(s.keys, d.SigningKey)
	}
	return router.Result{StatusCode: 200}, nil
}

func (s *signerSink) requests() []signedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]signedRequest(nil), s.sent...)
}

func (s *signerSink) handedKeys() []*rsa.PrivateKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*rsa.PrivateKey(nil), s.keys...)
}

func (f *signerFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	var c struct {
		Secured bool `yaml:"secured"`
	}
	if err := config.DecodeStrict(node, "", &c); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &signerSink{secured: c.Secured}
	if f.sinks == nil {
		f.sinks = map[string]*signerSink{}
	}
	f.sinks[name] = s
	return s, nil
}

func (f *signerFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	return []router.FieldSpec{{Name: "text"}}, kind == "signer"
}

const keysConfig = `
admin:
  tokens:
    - {name: ops, token: "${OPS_TOKEN}", scopes: [read, webhooks.create, webhooks.delete]}
    - {name: viewer, token: "${VIEW_TOKEN}", scopes: [read]}
    - {name: replayer, token: "${REPLAY_TOKEN}", scopes: [read, replay]}
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: signed, type: signer, secured: true, pause_after: 0}
  - {name: plain, type: signer}
rules:
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: signed, text: "{{ .visitor.name }}"}]}
`

const (
	opsToken    = "ops-" + canarySecret
	viewToken   = "view-" + canarySecret
	replayToken = "replay-" + canarySecret
	keysPath    = "/api/v2/default/webhooks/signed/keys"
	masterKey   = "test-master-key-0123456789abcdef-CANARY"
)

type keysEnv struct {
	*adminEnv
	sink *signerSink
	db   string
}

// keysSetup starts a router on a real SQLite store; master is
// HOOKROUTE_MASTER_KEY ("" for unset).
func keysSetup(t *testing.T, master string) *keysEnv {
	t.Helper()
	env := map[string]string{"PUB": pubPEM(), "OPS_TOKEN": opsToken, "VIEW_TOKEN": viewToken, "REPLAY_TOKEN": replayToken}
	f := &signerFactory{}
	rt, err := rules.Load("rules.yaml", []byte(keysConfig), f, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "db")
	st, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, err := dispatch.ParseMasterKey(master)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Metrics: dispatch.NewMetrics(reg), PruneEvery: -1,
		MasterKey: mk, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return &keysEnv{
		adminEnv: &adminEnv{logs: logs, r: r, api: admin.Handler(r, reg), store: st},
		sink:     f.sinks["signed"],
		db:       db,
	}
}

// createdKey is the key API's answer to POST.
type createdKey struct {
	KeyID     string    `json:"key_id"`
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
	Signing   bool      `json:"signing"`
}

func (e *keysEnv) generate(t *testing.T) createdKey {
	t.Helper()
	code, body := e.call(t, "POST", keysPath, opsToken, "")
	var k createdKey
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &k) != nil || k.KeyID == "" {
		t.Fatalf("generate: %d %s", code, body)
	}
	return k
}

func (e *keysEnv) list(t *testing.T) []createdKey {
	t.Helper()
	code, body := e.call(t, "GET", keysPath, viewToken, "")
	var out struct{ Items []createdKey }
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	return out.Items
}

func TestKeyRoutesAuth(t *testing.T) {
	e := keysSetup(t, masterKey)
	routes := []struct{ method, path, scope string }{
		{"POST", keysPath, "webhooks.create"},
		{"GET", keysPath, "read"},
		{"DELETE", keysPath + "/k_nope", "webhooks.delete"},
	}
	for _, rt := range routes {
		for _, tok := range []string{"", "wrong-" + canarySecret} {
			if code, _ := e.call(t, rt.method, rt.path, tok, ""); code != 401 {
				t.Errorf("%s %s with token %q: %d, want 401", rt.method, rt.path, tok, code)
			}
		}
		for _, tok := range []string{viewToken, replayToken} {
			code, _ := e.call(t, rt.method, rt.path, tok, "")
			if rt.scope != "read" && code != 403 {
				t.Errorf("%s %s without %s: %d, want 403", rt.method, rt.path, rt.scope, code)
			}
			if rt.scope == "read" && code != 200 {
				t.Errorf("%s %s with read: %d, want 200", rt.method, rt.path, code)
			}
		}
		// Only the configured screenname exists; the check comes after
		// authentication, so it tells an outsider nothing.
		other := strings.Replace(rt.path, "/default/", "/acme/", 1)
		if code, body := e.call(t, rt.method, other, opsToken, ""); code != 404 || !strings.Contains(body, "screenname") {
			t.Errorf("%s %s: %d %s, want 404 naming the screenname", rt.method, other, code, body)
		}
		if code, _ := e.call(t, rt.method, other, "", ""); code != 401 {
			t.Errorf("%s %s without a token: %d, want 401", rt.method, other, code)
		}
	}
}

func TestKeyAPI(t *testing.T) {
	e := keysSetup(t, masterKey)
	for _, c := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/v2/default/webhooks/nosuch/keys", 404, `no sink named \"nosuch\"`},
		{"/api/v2/default/webhooks/plain/keys", 409, "secured: true"},
	} {
		if code, body := e.call(t, "POST", c.path, opsToken, ""); code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("POST %s: %d %s, want %d with %q", c.path, code, body, c.code, c.msg)
		}
	}
	if code, body := e.call(t, "GET", "/api/v2/default/webhooks/nosuch/keys", opsToken, ""); code != 404 {
		t.Errorf("list keys of an unknown sink: %d %s", code, body)
	}
	if ks := e.list(t); len(ks) != 0 {
		t.Errorf("a new sink lists %d keys", len(ks))
	}

	k1 := e.generate(t)
	if !k1.Signing || time.Since(k1.CreatedAt) > time.Minute {
		t.Errorf("first key: %+v; want it signing, created now", k1)
	}
	if pub, err := verify.ParseRSAPublicKey([]byte(k1.PublicKey)); err != nil || pub.N.BitLen() != 2048 || !strings.HasPrefix(k1.PublicKey, "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("public key: %v\n%s", err, k1.PublicKey)
	}
	k2 := e.generate(t)
	if k2.Signing || k2.KeyID == k1.KeyID {
		t.Errorf("second key: %+v; want a new id, not signing while the first exists", k2)
	}
	code, body := e.call(t, "POST", keysPath, opsToken, "")
	if code != 409 || !strings.Contains(body, "delete one first") {
		t.Errorf("third key: %d %s, want 409", code, body)
	}
	ks := e.list(t)
	if len(ks) != 2 || ks[0].KeyID != k1.KeyID || !ks[0].Signing || ks[1].KeyID != k2.KeyID || ks[1].Signing ||
		ks[0].PublicKey != k1.PublicKey || !ks[0].CreatedAt.Equal(k1.CreatedAt) {
		t.Errorf("listing: %+v", ks)
	}
	if code, body := e.call(t, "DELETE", keysPath+"/k_nosuch", opsToken, ""); code != 404 || !strings.Contains(body, "no key") {
		t.Errorf("delete an unknown key: %d %s", code, body)
	}
	if code, body := e.call(t, "DELETE", "/api/v2/default/webhooks/plain/keys/"+k1.KeyID, opsToken, ""); code != 404 {
		t.Errorf("delete a key through another sink: %d %s", code, body)
	}
	if code, body := e.call(t, "DELETE", keysPath+"/"+k1.KeyID, opsToken, ""); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if ks := e.list(t); len(ks) != 1 || ks[0].KeyID != k2.KeyID || !ks[0].Signing {
		t.Errorf("after deleting the oldest: %+v, want the second key alone, signing", ks)
	}
	k3 := e.generate(t)
	if ks := e.list(t); len(ks) != 2 || ks[0].KeyID != k2.KeyID || ks[1].KeyID != k3.KeyID {
		t.Errorf("after the next rotation: %+v", ks)
	}
	logs := e.logs.String()
	for _, want := range []string{`"msg":"signing key created"`, `"msg":"signing key deleted"`, `"by":"ops"`, k1.KeyID} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
}

func TestKeyAPIWithoutMasterKey(t *testing.T) {
	e := keysSetup(t, "")
	code, body := e.call(t, "POST", keysPath, opsToken, "")
	if code != 503 || !strings.Contains(body, "HOOKROUTE_MASTER_KEY") {
		t.Errorf("generate without a master key: %d %s, want 503 naming HOOKROUTE_MASTER_KEY", code, body)
	}
	if ks := e.list(t); len(ks) != 0 {
		t.Errorf("listing: %+v", ks)
	}
	// The sink cannot sign, so its deliveries wait, and the log says why.
	post(t, e.r.IngestHandler(), event("nomaster", "sad"))
	e.run(t)
	waitFor(t, "the unsigned delivery flagged", func() bool { return strings.Contains(e.logs.String(), "HOOKROUTE_MASTER_KEY is not set") })
	if n := len(e.sink.requests()); n != 0 {
		t.Errorf("%d requests sent without a key", n)
	}
}

// TestSecuredSinkWaitsForKeyAndRotates: deliveries to a secured sink wait,
// unattempted, until a key exists; then each request verifies, by the
// SalesIQ description alone, against the public key the API returned —
// across a rotation in which the oldest key signs until it is deleted.
// Nothing the router says or stores shows the private key.
func TestSecuredSinkWaitsForKeyAndRotates(t *testing.T) {
	e := keysSetup(t, masterKey)
	for _, id := range []string{"w1", "w2", "w3"} {
		if w := post(t, e.r.IngestHandler(), event(id, "sad")); w.Code != 202 {
			t.Fatalf("ingest: %d", w.Code)
		}
	}
	e.run(t)
	waitFor(t, "the waiting deliveries counted", func() bool {
		_, body := e.call(t, "GET", "/metrics", viewToken, "")
		return strings.Contains(body, `hookroute_unsigned_waiting_total{sink="signed"}`)
	})
	time.Sleep(300 * time.Millisecond) // long enough for a worker that did not wait to send
	if n := len(e.sink.requests()); n != 0 {
		t.Fatalf("%d requests sent before the sink had a key", n)
	}
	ds, err := e.store.ListDeliveries(context.Background(), router.DeliveryFilter{Sink: "signed"})
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries: %d, %v", len(ds), err)
	}
	for _, d := range ds {
		if d.Status != router.StatusPending || d.Attempts != 0 {
			t.Errorf("delivery %s is %s after %d attempts; want pending and unattempted", d.ID, d.Status, d.Attempts)
		}
	}
	if logs := e.logs.String(); !strings.Contains(logs, "no usable signing key") || !strings.Contains(logs, "hookroute keys generate --sink signed") {
		t.Errorf("the wait is not logged usefully:\n%s", logs)
	}
	if n := strings.Count(e.logs.String(), "no usable signing key"); n > 12 {
		t.Errorf("%d log lines about the wait; want them rate-limited", n)
	}

	k1 := e.generate(t)
	waitFor(t, "the waiting deliveries sent", func() bool { return len(e.sink.requests()) == 3 })
	checkSigned(t, e.sink.requests(), k1.PublicKey)

	// Rotation: a second key is announced; the first still signs.
	k2 := e.generate(t)
	post(t, e.r.IngestHandler(), event("r1", "sad"))
	waitFor(t, "the delivery during rotation", func() bool { return len(e.sink.requests()) == 4 })
	checkSigned(t, e.sink.requests()[3:], k1.PublicKey)
	if verifies(e.sink.requests()[3], k2.PublicKey) {
		t.Error("the new key signs while the old one exists")
	}
	if code, body := e.call(t, "DELETE", keysPath+"/"+k1.KeyID, opsToken, ""); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	post(t, e.r.IngestHandler(), event("r2", "sad"))
	waitFor(t, "the delivery after rotation", func() bool { return len(e.sink.requests()) == 5 })
	checkSigned(t, e.sink.requests()[4:], k2.PublicKey)
	if verifies(e.sink.requests()[4], k1.PublicKey) {
		t.Error("the deleted key still signs")
	}

	// No private key material anywhere: API answers, metrics, log, and
	// the database file (sealed at rest).
	var secrets []string
	for _, k := range e.sink.handedKeys() {
		secrets = append(secrets, privateKeyFragments(t, k)...)
	}
	if len(secrets) == 0 {
		t.Fatal("no key was handed to the sink")
	}
	secrets = append(secrets, "PRIVATE KEY", canarySecret, masterKey)
	var seen []string
	for _, p := range []string{keysPath, "/api/deliveries", "/api/sinks", "/api/events", "/api/deliveries/" + e.sink.requests()[0].id, "/metrics"} {
		_, body := e.call(t, "GET", p, viewToken, "")
		seen = append(seen, p+": "+body)
	}
	seen = append(seen, "log: "+e.logs.String())
	for _, s := range seen {
		for i, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("secret fragment #%d (of %d; the last three are \"PRIVATE KEY\", the admin canary and the master key) in %.60s", i, len(secrets), s)
			}
		}
	}
	var files []byte
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(e.db + suffix)
		files = append(files, b...)
	}
	if !bytes.Contains(files, []byte(k2.KeyID)) {
		t.Fatal("the key is not in the database file at all; the check below would prove nothing")
	}
	for _, k := range e.sink.handedKeys() {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		if bytes.Contains(files, der[len(der)/2:len(der)/2+64]) || bytes.Contains(files, k.D.Bytes()[:32]) {
			t.Error("the database file holds a private key in clear")
		}
	}
}

// checkSigned verifies each request as a receiver following SalesIQ's
// description would: base64 of an RSA-SHA256 PKCS#1 v1.5 signature over
// the raw body, against the PEM public key.
func checkSigned(t *testing.T, reqs []signedRequest, publicPEM string) {
	t.Helper()
	for _, r := range reqs {
		if !verifies(r, publicPEM) {
			t.Errorf("delivery %s: x-siqsignature %q does not verify against the key", r.id, r.signature)
		}
	}
}

func verifies(r signedRequest, publicPEM string) bool {
	block, _ := pem.Decode([]byte(publicPEM))
	if block == nil || block.Type != "PUBLIC KEY" {
		return false
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(r.signature)
	if err != nil {
		return false
	}
	digest := sha256.Sum256(r.body)
	return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig) == nil
}

// privateKeyFragments returns lines of k's PEM bodies (PKCS#8 and PKCS#1)
// and its private exponent in base64, for searching output.
func privateKeyFragments(t *testing.T, k *rsa.PrivateKey) []string {
	t.Helper()
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, block := range []*pem.Block{{Type: "PRIVATE KEY", Bytes: p8}, {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}} {
		lines := strings.Split(string(pem.EncodeToMemory(block)), "\n")
		out = append(out, lines[2:len(lines)-3]...) // full 64-character lines past the header
	}
	return append(out, base64.StdEncoding.EncodeToString(k.D.Bytes())[:40], base64.RawURLEncoding.EncodeToString(k.D.Bytes())[:40])
}
