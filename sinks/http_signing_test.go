package sinks

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/verify"
)

// Secured http sinks. The receivers below are written from the published
// descriptions with the standard library only, not with router/verify, so
// that a mistake shared by signer and verifier cannot hide.

var signingTestKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// salesIQValid checks x-siqsignature as SalesIQ documents it: base64 of an
// RSA-SHA256 PKCS#1 v1.5 signature over the raw body.
func salesIQValid(pub *rsa.PublicKey, body []byte, header string) bool {
	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return false
	}
	digest := sha256.Sum256(body)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
}

func TestHTTPSecuredSignsExactBody(t *testing.T) {
	f := newHTTPFake(t)
	s := mustBuild(t, "http", "url: "+f.URL+"/ok\nsecured: true", nil)
	if sec, ok := s.(router.Secured); !ok || !sec.Secured() {
		t.Fatal("a secured http sink does not report Secured()")
	}
	if sec := mustBuild(t, "http", "url: "+f.URL+"/ok", nil).(router.Secured); sec.Secured() {
		t.Error("a plain http sink reports Secured()")
	}
	for _, fields := range []map[string]string{
		nil, // the event view as JSON
		{"body": `{"text": "sad \u00e9 <b>"}` + "\n"}, // a rendered body, byte for byte
	} {
		d := delivery(fields)
		d.SigningKey = signingTestKey
		if _, err := s.Deliver(context.Background(), d); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		r, body := f.last(t)
		sig := r.Header.Get("x-siqsignature")
		if !salesIQValid(&signingTestKey.PublicKey, body, sig) {
			t.Errorf("x-siqsignature %q does not verify over the body received:\n%s", sig, body)
		}
		if b, ok := fields["body"]; ok && string(body) != b {
			t.Errorf("body sent %q, want the rendered %q", body, b)
		}
		if r.Header.Get("Idempotency-Key") != d.ID || r.Header.Get("webhook-signature") != "" {
			t.Errorf("headers: %v", r.Header)
		}
		// The verifier the router's own salesiq sources use agrees.
		v, err := verify.NewSalesIQ([]*rsa.PublicKey{&signingTestKey.PublicKey})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(r.Header, body, time.Now()); err != nil {
			t.Errorf("router/verify refuses it: %v", err)
		}
	}
}

func TestHTTPSecuredWithoutKeySendsNothing(t *testing.T) {
	f := newHTTPFake(t)
	s := mustBuild(t, "http", "url: "+f.URL+"/ok\nsecured: true", nil)
	_, err := s.Deliver(context.Background(), delivery(nil))
	if err == nil || router.IsPermanent(err) || !strings.Contains(err.Error(), "signing key") {
		t.Errorf("Deliver without a key: %v; want a retryable error about the key", err)
	}
	if f.count() != 0 {
		t.Errorf("%d requests sent unsigned", f.count())
	}
}

func TestHTTPSecuredStandardWebhooks(t *testing.T) {
	raw := make([]byte, 24)
	rand.Read(raw)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	f := newHTTPFake(t)
	s := mustBuild(t, "http", "url: "+f.URL+"/ok\nsecured: true\nsigning: standard-webhooks\nsecret: ${WHSEC}", map[string]string{"WHSEC": secret})
	if s.(router.Secured).Secured() {
		t.Error("a standard-webhooks sink asks the worker for a key it does not use")
	}
	hs := s.(*httpSink)
	var stamps []string
	for i, at := range []time.Time{time.Unix(1700000000, 0), time.Unix(1700000042, 0)} {
		hs.now = func() time.Time { return at }
		d := delivery(nil)
		d.Attempt = i + 1 // a retry: same delivery id, new attempt
		if _, err := s.Deliver(context.Background(), d); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		r, body := f.last(t)
		id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
		if id != d.ID {
			t.Errorf("webhook-id %q, want the delivery id %q", id, d.ID)
		}
		if want := strconv.FormatInt(at.Unix(), 10); ts != want {
			t.Errorf("webhook-timestamp %q, want %s", ts, want)
		}
		// From the specification: v1,base64(HMAC-SHA256(key, id.timestamp.body))
		// with the key the base64 after whsec_.
		m := hmac.New(sha256.New, raw)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); sig != want {
			t.Errorf("webhook-signature %q, want %q", sig, want)
		}
		if r.Header.Get("x-siqsignature") != "" {
			t.Error("x-siqsignature sent by a standard-webhooks sink")
		}
		stamps = append(stamps, ts)
	}
	if stamps[0] == stamps[1] {
		t.Error("the timestamp did not change between attempts")
	}
}

func TestHTTPSigningConfig(t *testing.T) {
	const secretValue = "whsec_not!base64!CANARY"
	env := map[string]string{"WHSEC": "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")), "BAD": secretValue}
	const u = "url: https://x.example/\n"
	tests := []struct{ snippet, path, msg string }{
		{u + "signing: salesiq", "signing", "only with secured: true"},
		{u + "secret: ${WHSEC}", "secret", "only with secured: true"},
		{u + "secured: true\nsigning: pgp", "signing", "want salesiq or standard-webhooks"},
		{u + "secured: true\nsigning: standard-webhooks", "secret", "needs secret"},
		{u + "secured: true\nsigning: standard-webhooks\nsecret: ${BAD}", "secret", "not a Standard Webhooks secret"},
		{u + "secured: true\nsecret: ${WHSEC}", "secret", "only with signing: standard-webhooks"},
		{u + "secured: true\nsigning: standard-webhooks\nsecret: whsec_MDEyMzQ1Njc4OWFiY2RlZg==", "secret", "by reference"},
		{u + "secured: true\nheaders: {x-siqsignature: forged}", "headers.x-siqsignature", "the signature"},
		{u + "secured: true\nsigning: standard-webhooks\nsecret: ${WHSEC}\nheaders: {Webhook-Id: x}", "headers.Webhook-Id", "the signature"},
	}
	for _, tt := range tests {
		_, err := build(t, "http", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
		if strings.Contains(err.Error(), "CANARY") {
			t.Errorf("%q: the error quotes the secret: %v", tt.snippet, err)
		}
	}
	mustBuild(t, "http", u+"secured: true\nsigning: salesiq", nil)
	mustBuild(t, "http", u+"secured: true\nsigning: standard-webhooks\nsecret: ${WHSEC}", env)
	mustBuild(t, "http", u+"secured: false\nheaders: {x-siqsignature: static}", nil)
}
