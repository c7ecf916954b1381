package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Keys are generated once per test binary (2048-bit generation is slow,
// especially under -race) and never written to disk.
var (
	keysOnce sync.Once
	keysVal  [3]*rsa.PrivateKey
	keysErr  error
)

// testKeys returns three distinct 2048-bit keys: [0] and [1] are the
// "configured" pair used for rotation tests, [2] is a stranger's key.
func testKeys(tb testing.TB) [3]*rsa.PrivateKey {
	tb.Helper()
	keysOnce.Do(func() {
		var (
			wg   sync.WaitGroup
			errs [3]error
		)
		for i := range keysVal {
			wg.Go(func() { keysVal[i], errs[i] = rsa.GenerateKey(rand.Reader, 2048) })
		}
		wg.Wait()
		keysErr = errors.Join(errs[:]...)
	})
	if keysErr != nil {
		tb.Fatal(keysErr)
	}
	return keysVal
}

// testNow is a whole second so that ±N-second boundaries are exact.
var testNow = time.Unix(1_700_000_000, 0)

const salesIQBody = `{"entity_type":"chat","event":"chat_rating","entity":{"id":"1","rating":"sad"},"event_time":1700000000000}`

type vcase struct {
	name string
	h    http.Header
	body []byte
	now  time.Time // zero means testNow
	ok   bool
}

// runCases checks each case and that rejections wrap ErrUnauthorized without
// echoing any of the sensitive strings (secrets, presented signatures).
func runCases(t *testing.T, v Verifier, cases []vcase, sensitive ...string) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			if now.IsZero() {
				now = testNow
			}
			err := v.Verify(c.h, c.body, now)
			if c.ok {
				if err != nil {
					t.Fatalf("Verify = %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted, want rejection")
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("Verify = %v, does not wrap ErrUnauthorized", err)
			}
			msg := err.Error()
			t.Log(msg)
			for _, vs := range c.h {
				for _, val := range vs {
					if len(val) >= 8 && strings.Contains(msg, val) {
						t.Fatalf("error %q echoes a header value", msg)
					}
				}
			}
			for _, s := range sensitive {
				if s != "" && strings.Contains(msg, s) {
					t.Fatalf("error %q leaks sensitive material", msg)
				}
			}
		})
	}
}

// hdr builds a header through net/http's canonicalisation, as the server does.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// rawHdr builds a header map with keys exactly as given, as a hand-built map
// or another transport might.
func rawHdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1])
	}
	return h
}

func flipBit(b []byte, bit int) []byte {
	out := append([]byte(nil), b...)
	out[bit/8] ^= 1 << (bit % 8)
	return out
}

// flipLastBase64Bit sets the lowest bit of the last non-padding character,
// which for these lengths only touches padding bits: the decoded value is
// unchanged, but the spelling is not canonical.
func flipLastBase64Bit(t *testing.T, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := len(strings.TrimRight(s, "=")) - 1
	idx := strings.IndexByte(alphabet, s[i])
	if idx < 0 {
		t.Fatalf("not base64: %q", s)
	}
	return s[:i] + string(alphabet[idx^1]) + s[i+1:]
}

func mustSignSalesIQ(t testing.TB, k *rsa.PrivateKey, body []byte) string {
	t.Helper()
	s, err := SignSalesIQ(k, body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustVerifier is curried so a constructor's two results can be passed
// straight in: mustVerifier(t)(NewGitHub(...)).
func mustVerifier(t testing.TB) func(Verifier, error) Verifier {
	return func(v Verifier, err error) Verifier {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestSalesIQ(t *testing.T) {
	k := testKeys(t)
	body := []byte(salesIQBody)
	good := mustSignSalesIQ(t, k[0], body)
	raw, _ := base64.StdEncoding.DecodeString(good)
	reenc := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	pss, err := rsa.SignPSS(rand.Reader, k[0], crypto.SHA256, sha256Sum(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	const name = "X-Siqsignature"

	v := mustVerifier(t)(NewSalesIQ([]*rsa.PublicKey{&k[0].PublicKey}))
	runCases(t, v, []vcase{
		{name: "valid", h: hdr(name, good), body: body, ok: true},
		{name: "valid empty body", h: hdr(name, mustSignSalesIQ(t, k[0], nil)), body: nil, ok: true},
		{name: "wrong key", h: hdr(name, mustSignSalesIQ(t, k[2], body)), body: body},
		{name: "body first bit flipped", h: hdr(name, good), body: flipBit(body, 0)},
		{name: "body middle bit flipped", h: hdr(name, good), body: flipBit(body, len(body)*4+3)},
		{name: "body last bit flipped", h: hdr(name, good), body: flipBit(body, len(body)*8-1)},
		{name: "body extra byte", h: hdr(name, good), body: append(append([]byte(nil), body...), ' ')},
		{name: "signature first bit flipped", h: hdr(name, reenc(flipBit(raw, 0))), body: body},
		{name: "signature middle bit flipped", h: hdr(name, reenc(flipBit(raw, len(raw)*4))), body: body},
		{name: "signature last bit flipped", h: hdr(name, reenc(flipBit(raw, len(raw)*8-1))), body: body},
		{name: "signature non-canonical padding bits", h: hdr(name, flipLastBase64Bit(t, good)), body: body},
		{name: "signature with trailing newline", h: hdr(name, good+"\n"), body: body},
		{name: "signature with embedded CRLF", h: hdr(name, good[:64]+"\r\n"+good[64:]), body: body},
		{name: "signature truncated by one byte", h: hdr(name, reenc(raw[:len(raw)-1])), body: body},
		{name: "signature truncated text", h: hdr(name, good[:len(good)-4]), body: body},
		{name: "signature empty", h: hdr(name, ""), body: body},
		{name: "signature one byte too long", h: hdr(name, reenc(append(append([]byte(nil), raw...), 0))), body: body},
		{name: "signature over-long text", h: hdr(name, good+"AAAA"), body: body},
		{name: "signature 64 KiB", h: hdr(name, strings.Repeat("A", 64<<10)), body: body},
		{name: "signature hex instead of base64", h: hdr(name, hex.EncodeToString(raw)), body: body},
		{name: "signature unpadded base64", h: hdr(name, base64.RawStdEncoding.EncodeToString(raw)), body: body},
		{name: "signature URL-safe base64", h: hdr(name, base64.URLEncoding.EncodeToString(raw)), body: body, ok: !strings.ContainsAny(good, "+/")},
		{name: "PSS instead of PKCS1v15", h: hdr(name, reenc(pss)), body: body},
		{name: "missing header", h: hdr(), body: body},
		{name: "nil header", h: nil, body: body},
		{name: "signature under another header", h: hdr("X-Signature", good), body: body},
		{name: "header lowercase raw key", h: rawHdr("x-siqsignature", good), body: body, ok: true},
		{name: "header uppercase raw key", h: rawHdr("X-SIQSIGNATURE", good), body: body, ok: true},
		{name: "header mixed case via Set", h: hdr("X-SiqSignature", good), body: body, ok: true},
		{name: "header repeated", h: hdr(name, good, name, good), body: body},
		{name: "header repeated in two spellings", h: rawHdr("x-siqsignature", good, "X-Siqsignature", good), body: body},
		{name: "header name with unicode fold", h: rawHdr("x-\u017fiqsignature", good), body: body},
	})
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func TestSalesIQRotation(t *testing.T) {
	k := testKeys(t)
	body := []byte(salesIQBody)
	both := mustVerifier(t)(NewSalesIQ([]*rsa.PublicKey{&k[0].PublicKey, &k[1].PublicKey}))
	runCases(t, both, []vcase{
		{name: "old key", h: hdr(salesIQHeader, mustSignSalesIQ(t, k[0], body)), body: body, ok: true},
		{name: "new key", h: hdr(salesIQHeader, mustSignSalesIQ(t, k[1], body)), body: body, ok: true},
		{name: "stranger key", h: hdr(salesIQHeader, mustSignSalesIQ(t, k[2], body)), body: body},
	})
	newOnly := mustVerifier(t)(NewSalesIQ([]*rsa.PublicKey{&k[1].PublicKey}))
	runCases(t, newOnly, []vcase{
		{name: "retired key", h: hdr(salesIQHeader, mustSignSalesIQ(t, k[0], body)), body: body},
	})
}

func TestSalesIQCopiesKeys(t *testing.T) {
	k := testKeys(t)
	pub := &rsa.PublicKey{N: new(big.Int).Set(k[0].N), E: k[0].E}
	v := mustVerifier(t)(NewSalesIQ([]*rsa.PublicKey{pub}))
	pub.N.SetInt64(3)
	pub.E = 4
	body := []byte("x")
	if err := v.Verify(hdr(salesIQHeader, mustSignSalesIQ(t, k[0], body)), body, testNow); err != nil {
		t.Fatalf("verifier changed with the caller's key: %v", err)
	}
}

func TestNewSalesIQErrors(t *testing.T) {
	k := testKeys(t)
	small := smallKey(t)
	for _, c := range []struct {
		name string
		keys []*rsa.PublicKey
	}{
		{"nil slice", nil},
		{"empty slice", []*rsa.PublicKey{}},
		{"nil key", []*rsa.PublicKey{&k[0].PublicKey, nil}},
		{"nil modulus", []*rsa.PublicKey{{E: 65537}}},
		{"1024-bit key", []*rsa.PublicKey{&small.PublicKey}},
		{"even exponent", []*rsa.PublicKey{{N: k[0].N, E: 65536}}},
		{"exponent 1", []*rsa.PublicKey{{N: k[0].N, E: 1}}},
		{"even modulus", []*rsa.PublicKey{{N: new(big.Int).Lsh(big.NewInt(1), 2048), E: 65537}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if v, err := NewSalesIQ(c.keys); err == nil {
				t.Fatalf("NewSalesIQ = %v, want error", v)
			}
		})
	}
}

var (
	smallOnce sync.Once
	smallVal  *rsa.PrivateKey
)

func smallKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	smallOnce.Do(func() { smallVal, _ = rsa.GenerateKey(rand.Reader, 1024) })
	if smallVal == nil {
		t.Fatal("cannot generate 1024-bit key")
	}
	return smallVal
}

func TestSignSalesIQErrors(t *testing.T) {
	if _, err := SignSalesIQ(nil, []byte("x")); err == nil {
		t.Error("nil key: want error")
	}
	if _, err := SignSalesIQ(&rsa.PrivateKey{}, []byte("x")); err == nil {
		t.Error("zero key: want error")
	}
	if _, err := SignSalesIQ(smallKey(t), []byte("x")); err == nil {
		t.Error("1024-bit key: want error")
	}
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// wrap64 reflows base64 the way a web page or YAML block would.
func wrap64(s, indent string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(indent + s[:64] + "\r\n")
		s = s[64:]
	}
	b.WriteString(indent + s + "\n")
	return b.String()
}

func TestParseRSAPublicKey(t *testing.T) {
	k := testKeys(t)
	pub := &k[0].PublicKey
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	smallDER, _ := x509.MarshalPKIXPublicKey(&smallKey(t).PublicKey)
	b64 := base64.StdEncoding.EncodeToString

	for _, c := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"PEM PKIX", string(pemBytes("PUBLIC KEY", pkix)), true},
		{"PEM PKCS1", string(pemBytes("RSA PUBLIC KEY", pkcs1)), true},
		{"PEM PKIX with surrounding text", "SalesIQ key:\n" + string(pemBytes("PUBLIC KEY", pkix)) + "(rotated 2026-11)\n", true},
		{"bare base64 PKIX", b64(pkix), true},
		{"bare base64 PKIX wrapped and indented", wrap64(b64(pkix), "  "), true},
		{"bare base64 PKIX with spaces", strings.Join(strings.SplitAfter(b64(pkix), "A"), " "), true},
		{"bare base64 PKIX unpadded", base64.RawStdEncoding.EncodeToString(pkix), true},
		{"bare base64 PKCS1 fallback", b64(pkcs1), true},
		{"empty", "", false},
		{"whitespace", " \n\t", false},
		{"garbage", "not a key at all", false},
		{"base64 of garbage", b64([]byte("definitely not DER")), false},
		{"hex DER", hex.EncodeToString(pkix), false},
		{"PEM truncated", string(pemBytes("PUBLIC KEY", pkix))[:200], false},
		{"PEM corrupted DER", string(pemBytes("PUBLIC KEY", pkix[:len(pkix)-10])), false},
		{"PEM PKCS1 labelled PKIX", string(pemBytes("PUBLIC KEY", pkcs1)), false},
		{"PEM certificate type", string(pemBytes("CERTIFICATE", pkix)), false},
		{"PEM private key", string(pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k[0]))), false},
		{"PEM two keys", string(pemBytes("PUBLIC KEY", pkix)) + string(pemBytes("PUBLIC KEY", pkix)), false},
		{"PEM EC key", string(pemBytes("PUBLIC KEY", ecDER)), false},
		{"bare base64 EC key", b64(ecDER), false},
		{"PEM ed25519 key", string(pemBytes("PUBLIC KEY", edDER)), false},
		{"PEM 1024-bit key", string(pemBytes("PUBLIC KEY", smallDER)), false},
		{"bare base64 1024-bit key", b64(smallDER), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRSAPublicKey([]byte(c.in))
			if !c.ok {
				if err == nil {
					t.Fatal("want error")
				}
				if got != nil {
					t.Fatal("key returned with error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(pub) {
				t.Fatal("parsed a different key")
			}
		})
	}
}

func TestParseRSAPrivateKey(t *testing.T) {
	k := testKeys(t)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k[0])
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	pkix, _ := x509.MarshalPKIXPublicKey(&k[0].PublicKey)
	small1 := x509.MarshalPKCS1PrivateKey(smallKey(t))
	encrypted := pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00000000000000000000000000000000"},
		Bytes:   x509.MarshalPKCS1PrivateKey(k[0]),
	})

	for _, c := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"PKCS8", pemBytes("PRIVATE KEY", pkcs8), true},
		{"PKCS1", pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k[0])), true},
		{"empty", nil, false},
		{"garbage", []byte("-----BEGIN nonsense"), false},
		{"bare base64", []byte(base64.StdEncoding.EncodeToString(pkcs8)), false},
		{"PKCS8 EC key", pemBytes("PRIVATE KEY", ec8), false},
		{"public key", pemBytes("PUBLIC KEY", pkix), false},
		{"PKCS1 labelled PKCS8", pemBytes("PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k[0])), false},
		{"corrupted", pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k[0])[:300]), false},
		{"encrypted legacy PEM", encrypted, false},
		{"encrypted PKCS8", pemBytes("ENCRYPTED PRIVATE KEY", pkcs8), false},
		{"1024-bit key", pemBytes("RSA PRIVATE KEY", small1), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRSAPrivateKey(c.in)
			if !c.ok {
				if err == nil {
					t.Fatal("want error")
				}
				// The DER of a key starts "MII" in base64; an error quoting
				// the input would show it.
				if strings.Contains(err.Error(), "MII") {
					t.Fatalf("error %q quotes key material", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(k[0]) {
				t.Fatal("parsed a different key")
			}
		})
	}
}

// TestSalesIQKeyFilesRoundTrip goes the way an operator would: key pair in
// PEM files, sign with `hookroute send`, verify in the router.
func TestSalesIQKeyFilesRoundTrip(t *testing.T) {
	k := testKeys(t)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k[1])
	priv, err := ParseRSAPrivateKey(pemBytes("PRIVATE KEY", pkcs8))
	if err != nil {
		t.Fatal(err)
	}
	pkix, _ := x509.MarshalPKIXPublicKey(&k[1].PublicKey)
	pub, err := ParseRSAPublicKey([]byte(base64.StdEncoding.EncodeToString(pkix)))
	if err != nil {
		t.Fatal(err)
	}
	v := mustVerifier(t)(NewSalesIQ([]*rsa.PublicKey{pub}))
	body := []byte(salesIQBody)
	if err := v.Verify(hdr(salesIQHeader, mustSignSalesIQ(t, priv, body)), body, testNow); err != nil {
		t.Fatal(err)
	}
}

func hmacHex(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func hmacB64(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestGitHubPublishedVector(t *testing.T) {
	// From docs.github.com "Validating webhook deliveries".
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	if got := SignGitHub(secret, body); got != want {
		t.Fatalf("SignGitHub = %s, want %s", got, want)
	}
	v := mustVerifier(t)(NewGitHub([][]byte{secret}))
	if err := v.Verify(hdr("X-Hub-Signature-256", want), body, testNow); err != nil {
		t.Fatal(err)
	}
}

func TestGitHub(t *testing.T) {
	secret := []byte("gh-secret-\x00-with-binary-\xff")
	body := []byte(`{"action":"opened","number":1}`)
	good := SignGitHub(secret, body)
	m := hmac.New(sha1.New, secret)
	m.Write(body)
	sha1Sig := "sha1=" + hex.EncodeToString(m.Sum(nil))
	const name = "X-Hub-Signature-256"
	hexPart := strings.TrimPrefix(good, "sha256=")
	rawMAC, _ := hex.DecodeString(hexPart)

	v := mustVerifier(t)(NewGitHub([][]byte{secret}))
	runCases(t, v, []vcase{
		{name: "valid", h: hdr(name, good), body: body, ok: true},
		{name: "valid empty body", h: hdr(name, SignGitHub(secret, nil)), body: nil, ok: true},
		{name: "wrong secret", h: hdr(name, SignGitHub([]byte("other"), body)), body: body},
		{name: "body first bit flipped", h: hdr(name, good), body: flipBit(body, 0)},
		{name: "body last bit flipped", h: hdr(name, good), body: flipBit(body, len(body)*8-1)},
		{name: "mac first bit flipped", h: hdr(name, "sha256="+hex.EncodeToString(flipBit(rawMAC, 0))), body: body},
		{name: "mac last bit flipped", h: hdr(name, "sha256="+hex.EncodeToString(flipBit(rawMAC, 255))), body: body},
		{name: "uppercase hex", h: hdr(name, "sha256="+strings.ToUpper(hexPart)), body: body, ok: strings.ToUpper(hexPart) == hexPart},
		{name: "uppercase prefix", h: hdr(name, "SHA256="+hexPart), body: body},
		{name: "base64 instead of hex", h: hdr(name, "sha256="+base64.StdEncoding.EncodeToString(rawMAC)), body: body},
		{name: "no prefix", h: hdr(name, hexPart), body: body},
		{name: "sha1 value in sha256 header", h: hdr(name, sha1Sig), body: body},
		{name: "only legacy sha1 header", h: hdr("X-Hub-Signature", sha1Sig), body: body},
		{name: "legacy sha1 valid, sha256 wrong", h: hdr("X-Hub-Signature", sha1Sig, name, SignGitHub([]byte("x"), body)), body: body},
		{name: "truncated", h: hdr(name, good[:len(good)-1]), body: body},
		{name: "prefix only", h: hdr(name, "sha256="), body: body},
		{name: "empty", h: hdr(name, ""), body: body},
		{name: "over-long", h: hdr(name, good+"0"), body: body},
		{name: "trailing space", h: hdr(name, good+" "), body: body},
		{name: "missing header", h: hdr(), body: body},
		{name: "header lowercase raw key", h: rawHdr("x-hub-signature-256", good), body: body, ok: true},
		{name: "header uppercase raw key", h: rawHdr("X-HUB-SIGNATURE-256", good), body: body, ok: true},
		{name: "header repeated", h: hdr(name, good, name, good), body: body},
	}, string(secret))
}

func TestGitHubRotationAndCopy(t *testing.T) {
	oldS, newS := []byte("old-secret"), []byte("new-secret")
	v := mustVerifier(t)(NewGitHub([][]byte{oldS, newS}))
	body := []byte("{}")
	wantOld, wantNew := SignGitHub(oldS, body), SignGitHub(newS, body)
	// The caller may zero its buffers after construction.
	clear(oldS)
	clear(newS)
	runCases(t, v, []vcase{
		{name: "old secret", h: hdr(githubHeader, wantOld), body: body, ok: true},
		{name: "new secret", h: hdr(githubHeader, wantNew), body: body, ok: true},
		{name: "third secret", h: hdr(githubHeader, SignGitHub([]byte("third"), body)), body: body},
	})
}

func TestNewGitHubErrors(t *testing.T) {
	for name, secrets := range map[string][][]byte{
		"nil":          nil,
		"empty list":   {},
		"empty secret": {[]byte("ok"), {}},
	} {
		if _, err := NewGitHub(secrets); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func TestHMAC(t *testing.T) {
	secret, other := []byte("generic-secret"), []byte("rotated-secret")
	body := []byte(`{"id":42}`)
	hexV := mustVerifier(t)(NewHMAC(HMACConfig{Header: "X-Signature", Encoding: "hex", Secrets: [][]byte{secret}}))
	b64V := mustVerifier(t)(NewHMAC(HMACConfig{Header: "X-Shopify-Hmac-Sha256", Encoding: "base64", Secrets: [][]byte{secret, other}}))
	prefV := mustVerifier(t)(NewHMAC(HMACConfig{Header: "Typeform-Signature", Encoding: "base64", Prefix: "sha256=", Secrets: [][]byte{secret}}))

	hx, b6 := hmacHex(secret, body), hmacB64(secret, body)
	rawMAC, _ := hex.DecodeString(hx)

	t.Run("hex", func(t *testing.T) {
		runCases(t, hexV, []vcase{
			{name: "valid", h: hdr("X-Signature", hx), body: body, ok: true},
			{name: "base64 given to hex verifier", h: hdr("X-Signature", b6), body: body},
			{name: "uppercase hex", h: hdr("X-Signature", strings.ToUpper(hx)), body: body, ok: strings.ToUpper(hx) == hx},
			{name: "unexpected prefix", h: hdr("X-Signature", "sha256="+hx), body: body},
			{name: "body bit flipped", h: hdr("X-Signature", hx), body: flipBit(body, 5)},
			{name: "mac bit flipped", h: hdr("X-Signature", hex.EncodeToString(flipBit(rawMAC, 100))), body: body},
			{name: "secret not in list", h: hdr("X-Signature", hmacHex(other, body)), body: body},
			{name: "truncated", h: hdr("X-Signature", hx[:63]), body: body},
			{name: "over-long", h: hdr("X-Signature", hx+"00"), body: body},
			{name: "missing", h: hdr("X-Other", hx), body: body},
			{name: "header lowercase raw key", h: rawHdr("x-signature", hx), body: body, ok: true},
			{name: "header uppercase raw key", h: rawHdr("X-SIGNATURE", hx), body: body, ok: true},
		}, string(secret))
	})
	t.Run("base64", func(t *testing.T) {
		runCases(t, b64V, []vcase{
			{name: "valid", h: hdr("X-Shopify-Hmac-Sha256", b6), body: body, ok: true},
			{name: "valid rotated secret", h: hdr("X-Shopify-Hmac-Sha256", hmacB64(other, body)), body: body, ok: true},
			{name: "hex given to base64 verifier", h: hdr("X-Shopify-Hmac-Sha256", hx), body: body},
			{name: "unpadded base64", h: hdr("X-Shopify-Hmac-Sha256", strings.TrimRight(b6, "=")), body: body},
			{name: "non-canonical padding bits", h: hdr("X-Shopify-Hmac-Sha256", flipLastBase64Bit(t, b6)), body: body},
			{name: "mac bit flipped", h: hdr("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(flipBit(rawMAC, 0))), body: body},
			{name: "body bit flipped", h: hdr("X-Shopify-Hmac-Sha256", b6), body: flipBit(body, 70)},
			{name: "empty", h: hdr("X-Shopify-Hmac-Sha256", ""), body: body},
			{name: "header lowercase raw key", h: rawHdr("x-shopify-hmac-sha256", b6), body: body, ok: true},
		}, string(secret), string(other))
	})
	t.Run("base64 with prefix", func(t *testing.T) {
		runCases(t, prefV, []vcase{
			{name: "valid", h: hdr("Typeform-Signature", "sha256="+b6), body: body, ok: true},
			{name: "missing prefix", h: hdr("Typeform-Signature", b6), body: body},
			{name: "wrong prefix", h: hdr("Typeform-Signature", "sha512="+b6), body: body},
			{name: "hex with prefix", h: hdr("Typeform-Signature", "sha256="+hx), body: body},
		}, string(secret))
	})
}

func TestNewHMACErrors(t *testing.T) {
	ok := [][]byte{[]byte("s")}
	for _, c := range []struct {
		name string
		cfg  HMACConfig
	}{
		{"empty header", HMACConfig{Encoding: "hex", Secrets: ok}},
		{"header with space", HMACConfig{Header: "X Signature", Encoding: "hex", Secrets: ok}},
		{"header with colon", HMACConfig{Header: "X-Signature:", Encoding: "hex", Secrets: ok}},
		{"empty encoding", HMACConfig{Header: "X-Sig", Secrets: ok}},
		{"unknown encoding", HMACConfig{Header: "X-Sig", Encoding: "base32", Secrets: ok}},
		{"uppercase encoding", HMACConfig{Header: "X-Sig", Encoding: "HEX", Secrets: ok}},
		{"no secrets", HMACConfig{Header: "X-Sig", Encoding: "hex"}},
		{"empty secret", HMACConfig{Header: "X-Sig", Encoding: "base64", Secrets: [][]byte{[]byte("a"), nil}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewHMAC(c.cfg); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

// The Standard Webhooks specification's published test vector.
const (
	swVectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swVectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swVectorTS     = 1614265330
	swVectorBody   = `{"test": 2432232314}`
	swVectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardWebhooksPublishedVector(t *testing.T) {
	got, err := SignStandardWebhooks(swVectorSecret, swVectorID, time.Unix(swVectorTS, 0), []byte(swVectorBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != swVectorSig {
		t.Fatalf("SignStandardWebhooks = %s, want %s", got, swVectorSig)
	}
	for _, secret := range []string{swVectorSecret, strings.TrimPrefix(swVectorSecret, "whsec_"), " " + swVectorSecret + "\n"} {
		v := mustVerifier(t)(NewStandardWebhooks([]string{secret}, 0))
		h := swHdr(swVectorID, strconv.Itoa(swVectorTS), swVectorSig)
		if err := v.Verify(h, []byte(swVectorBody), time.Unix(swVectorTS, 0)); err != nil {
			t.Fatalf("secret form %q: %v", secret[:4], err)
		}
	}
}

func swHdr(id, ts, sig string) http.Header {
	return hdr("webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sig)
}

func swSign(t testing.TB, secret, id string, ts int64, body []byte) string {
	t.Helper()
	s, err := SignStandardWebhooks(secret, id, time.Unix(ts, 0), body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// swSignRaw signs an arbitrary timestamp string, which SignStandardWebhooks
// cannot produce, to show that malformed timestamps are refused on their own
// and not only because the signature no longer matches.
func swSignRaw(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestStandardWebhooks(t *testing.T) {
	const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	secret := swVectorSecret
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	body := []byte(`{"type":"invoice.paid"}`)
	now := testNow.Unix()
	ts := strconv.FormatInt(now, 10)
	good := swSign(t, secret, id, now, body)
	rawMAC, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(good, "v1,"))
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-secret-of-24-bytes"))
	bad := swSign(t, other, id, now, body)

	// at signs a fresh message dated now+off seconds.
	at := func(off int64) http.Header {
		return swHdr(id, strconv.FormatInt(now+off, 10), swSign(t, secret, id, now+off, body))
	}
	entries := func(n int, goodAt int) string {
		e := make([]string, n)
		for i := range e {
			e[i] = bad
		}
		e[goodAt] = good
		return strings.Join(e, " ")
	}
	padTo := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }

	v := mustVerifier(t)(NewStandardWebhooks([]string{secret}, 0))
	runCases(t, v, []vcase{
		{name: "valid", h: swHdr(id, ts, good), body: body, ok: true},
		{name: "valid empty body", h: swHdr(id, ts, swSign(t, secret, id, now, nil)), body: nil, ok: true},
		{name: "299s old", h: at(-299), body: body, ok: true},
		{name: "299s ahead", h: at(299), body: body, ok: true},
		{name: "300s old", h: at(-300), body: body, ok: true},
		{name: "300s ahead", h: at(300), body: body, ok: true},
		{name: "301s old", h: at(-301), body: body},
		{name: "301s ahead", h: at(301), body: body},
		{name: "300s old with sub-second now", h: at(-300), body: body, now: testNow.Add(time.Millisecond)},
		{name: "timestamp zero", h: at(-now), body: body},
		{name: "wrong secret", h: swHdr(id, ts, bad), body: body},
		{name: "body first bit flipped", h: swHdr(id, ts, good), body: flipBit(body, 0)},
		{name: "body last bit flipped", h: swHdr(id, ts, good), body: flipBit(body, len(body)*8-1)},
		{name: "id changed", h: swHdr(id+"x", ts, good), body: body},
		{name: "timestamp changed within tolerance", h: swHdr(id, strconv.FormatInt(now-1, 10), good), body: body},
		{name: "timestamp with leading zero", h: swHdr(id, "0"+ts, good), body: body},
		{name: "mac first bit flipped", h: swHdr(id, ts, "v1,"+base64.StdEncoding.EncodeToString(flipBit(rawMAC, 0))), body: body},
		{name: "mac last bit flipped", h: swHdr(id, ts, "v1,"+base64.StdEncoding.EncodeToString(flipBit(rawMAC, 255))), body: body},
		{name: "non-canonical padding bits", h: swHdr(id, ts, flipLastBase64Bit(t, good)), body: body},
		{name: "unpadded base64", h: swHdr(id, ts, strings.TrimRight(good, "=")), body: body},
		{name: "hex instead of base64", h: swHdr(id, ts, "v1,"+hex.EncodeToString(rawMAC)), body: body},
		{name: "truncated", h: swHdr(id, ts, good[:len(good)-2]), body: body},
		{name: "over-long", h: swHdr(id, ts, good+"AAAA"), body: body},
		{name: "version prefix only", h: swHdr(id, ts, "v1,"), body: body},
		{name: "no version", h: swHdr(id, ts, strings.TrimPrefix(good, "v1,")), body: body},
		{name: "wrong version", h: swHdr(id, ts, "v2,"+strings.TrimPrefix(good, "v1,")), body: body},
		{name: "v1a entry only", h: swHdr(id, ts, "v1a,"+strings.TrimPrefix(good, "v1,")), body: body},
		{name: "space after comma", h: swHdr(id, ts, "v1, "+strings.TrimPrefix(good, "v1,")), body: body},
		{name: "comma separated list", h: swHdr(id, ts, bad+","+good), body: body},
		{name: "bad then good", h: swHdr(id, ts, bad+" "+good), body: body, ok: true},
		{name: "wrong version next to a v1 entry", h: swHdr(id, ts, "v1,AAAA v2,"+strings.TrimPrefix(good, "v1,")), body: body},
		{name: "v1a then good", h: swHdr(id, ts, "v1a,AAAA "+good), body: body, ok: true},
		{name: "double spaces", h: swHdr(id, ts, "  "+bad+"   "+good+" "), body: body, ok: true},
		{name: "16 entries, good last", h: swHdr(id, ts, entries(16, 15)), body: body, ok: true},
		{name: "17 entries, good last", h: swHdr(id, ts, entries(17, 16)), body: body},
		{name: "17 entries, good first", h: swHdr(id, ts, entries(17, 0)), body: body},
		{name: "header exactly 8 KiB", h: swHdr(id, ts, padTo(good, 8<<10)), body: body, ok: true},
		{name: "header 8 KiB + 1", h: swHdr(id, ts, padTo(good, 8<<10+1)), body: body},
		{name: "missing id", h: hdr("webhook-timestamp", ts, "webhook-signature", good), body: body},
		{name: "empty id", h: swHdr("", ts, good), body: body},
		{name: "missing timestamp", h: hdr("webhook-id", id, "webhook-signature", good), body: body},
		{name: "missing signature", h: hdr("webhook-id", id, "webhook-timestamp", ts), body: body},
		{name: "nil header", h: nil, body: body},
		{name: "timestamp not a number", h: swHdr(id, "yesterday", good), body: body},
		{name: "timestamp with plus sign", h: swHdr(id, "+"+ts, good), body: body},
		{name: "timestamp with plus sign, signed as sent", h: swHdr(id, "+"+ts, swSignRaw(key, id, "+"+ts, body)), body: body},
		{name: "timestamp with space, signed as sent", h: swHdr(id, ts+" ", swSignRaw(key, id, ts+" ", body)), body: body},
		{name: "timestamp fractional, signed as sent", h: swHdr(id, ts+".5", swSignRaw(key, id, ts+".5", body)), body: body},
		{name: "timestamp negative", h: swHdr(id, "-1", good), body: body},
		{name: "timestamp fractional", h: swHdr(id, ts+".0", good), body: body},
		{name: "timestamp milliseconds", h: swHdr(id, ts+"000", good), body: body},
		{name: "timestamp huge", h: swHdr(id, "99999999999999999999999", good), body: body},
		{name: "timestamp max int64", h: swHdr(id, "9223372036854775807", good), body: body},
		{name: "timestamp with space", h: swHdr(id, " "+ts, good), body: body},
		{name: "signature header repeated", h: hdr("webhook-id", id, "webhook-timestamp", ts, "webhook-signature", bad, "webhook-signature", good), body: body},
		{name: "headers in raw lowercase", h: rawHdr("webhook-id", id, "webhook-timestamp", ts, "webhook-signature", good), body: body, ok: true},
		{name: "headers in raw uppercase", h: rawHdr("WEBHOOK-ID", id, "WEBHOOK-TIMESTAMP", ts, "WEBHOOK-SIGNATURE", good), body: body, ok: true},
		{name: "svix headers are not read", h: hdr("svix-id", id, "svix-timestamp", ts, "svix-signature", good), body: body},
		{name: "zero now", h: swHdr(id, ts, good), body: body, now: time.Unix(0, 0)},
	}, secret, strings.TrimPrefix(secret, "whsec_"), string(key))
}

func TestStandardWebhooksRotationAndTolerance(t *testing.T) {
	const id = "msg_rot"
	oldS := swVectorSecret
	newS := "whsec_" + base64.StdEncoding.EncodeToString([]byte("the-new-secret-is-32-bytes-long!"))
	body := []byte("{}")
	now := testNow.Unix()
	ts := strconv.FormatInt(now, 10)
	sOld, sNew := swSign(t, oldS, id, now, body), swSign(t, newS, id, now, body)

	both := mustVerifier(t)(NewStandardWebhooks([]string{oldS, newS}, 0))
	newOnly := mustVerifier(t)(NewStandardWebhooks([]string{newS}, 0))
	t.Run("both secrets", func(t *testing.T) {
		runCases(t, both, []vcase{
			{name: "old", h: swHdr(id, ts, sOld), body: body, ok: true},
			{name: "new", h: swHdr(id, ts, sNew), body: body, ok: true},
		})
	})
	t.Run("new secret only", func(t *testing.T) {
		runCases(t, newOnly, []vcase{
			{name: "old", h: swHdr(id, ts, sOld), body: body},
			{name: "sender signs with both", h: swHdr(id, ts, sOld+" "+sNew), body: body, ok: true},
		})
	})

	tight := mustVerifier(t)(NewStandardWebhooks([]string{oldS}, 10*time.Second))
	at := func(off int64) http.Header {
		return swHdr(id, strconv.FormatInt(now+off, 10), swSign(t, oldS, id, now+off, body))
	}
	t.Run("10s tolerance", func(t *testing.T) {
		runCases(t, tight, []vcase{
			{name: "-10s", h: at(-10), body: body, ok: true},
			{name: "+10s", h: at(10), body: body, ok: true},
			{name: "-11s", h: at(-11), body: body},
			{name: "+11s", h: at(11), body: body},
		})
	})
}

func TestNewStandardWebhooksErrors(t *testing.T) {
	const undecodable = "whsec_th1s!s-n0t*base64"
	for _, c := range []struct {
		name    string
		secrets []string
		tol     time.Duration
	}{
		{"no secrets", nil, 0},
		{"empty secret", []string{swVectorSecret, ""}, 0},
		{"prefix only", []string{"whsec_"}, 0},
		{"undecodable", []string{undecodable}, 0},
		{"undecodable without prefix", []string{"plain text secret"}, 0},
		{"negative tolerance", []string{swVectorSecret}, -time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewStandardWebhooks(c.secrets, c.tol)
			if err == nil {
				t.Fatal("want error")
			}
			for _, s := range c.secrets {
				if s == "" {
					continue
				}
				body := strings.TrimPrefix(s, "whsec_")
				if strings.Contains(err.Error(), s) || (len(body) >= 4 && strings.Contains(err.Error(), body)) {
					t.Fatalf("error %q contains the secret", err)
				}
			}
		})
	}
	if _, err := SignStandardWebhooks(undecodable, "id", testNow, nil); err == nil || strings.Contains(err.Error(), "th1s") {
		t.Fatalf("SignStandardWebhooks with undecodable secret: %v", err)
	}
}

func TestNone(t *testing.T) {
	v := None()
	for _, h := range []http.Header{nil, {}, hdr(salesIQHeader, "garbage")} {
		if err := v.Verify(h, []byte("anything"), time.Time{}); err != nil {
			t.Fatalf("None().Verify = %v", err)
		}
	}
}

// TestConcurrentVerify lets -race check that verifiers really are read-only
// after construction.
func TestConcurrentVerify(t *testing.T) {
	k := testKeys(t)
	body := []byte(salesIQBody)
	siq := mustVerifier(t)(NewSalesIQ([]*rsa.PublicKey{&k[0].PublicKey, &k[1].PublicKey}))
	gh := mustVerifier(t)(NewGitHub([][]byte{[]byte("s")}))
	sw := mustVerifier(t)(NewStandardWebhooks([]string{swVectorSecret}, 0))
	ts := strconv.FormatInt(testNow.Unix(), 10)
	reqs := []struct {
		v Verifier
		h http.Header
	}{
		{siq, hdr(salesIQHeader, mustSignSalesIQ(t, k[1], body))},
		{gh, hdr(githubHeader, SignGitHub([]byte("s"), body))},
		{sw, swHdr("id", ts, swSign(t, swVectorSecret, "id", testNow.Unix(), body))},
	}
	var wg sync.WaitGroup
	for range 4 {
		for _, r := range reqs {
			wg.Go(func() {
				for range 5 {
					if err := r.v.Verify(r.h, body, testNow); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
}

func TestDecodeCanonicalBase64(t *testing.T) {
	raw := []byte{0xfb, 0xff, 0x01, 0x80}
	enc := base64.StdEncoding.EncodeToString(raw) // "+/8BgA=="
	if got, ok := decodeCanonicalBase64(enc); !ok || string(got) != string(raw) {
		t.Fatalf("decodeCanonicalBase64(%q) = %x, %v", enc, got, ok)
	}
	for _, s := range []string{
		enc + "\n",
		enc[:4] + "\r\n" + enc[4:],
		"\n" + enc,
		flipLastBase64Bit(t, enc),
		strings.TrimRight(enc, "="),
		base64.URLEncoding.EncodeToString(raw),
		enc + " ",
	} {
		if _, ok := decodeCanonicalBase64(s); ok {
			t.Errorf("decodeCanonicalBase64(%q) accepted a non-canonical spelling", s)
		}
	}
}

// TestOversizedInputIsCheap pins the claim that hostile headers are turned
// away before any decoding, hashing or signature work: those paths would
// allocate, these must not.
func TestOversizedInputIsCheap(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	k := testKeys(t)
	body := make([]byte, 1<<20)
	siq := mustVerifier(t)(NewSalesIQ([]*rsa.PublicKey{&k[0].PublicKey}))
	gh := mustVerifier(t)(NewGitHub([][]byte{[]byte("s")}))
	sw := mustVerifier(t)(NewStandardWebhooks([]string{swVectorSecret}, 0))
	ts := strconv.FormatInt(testNow.Unix(), 10)
	sig := "v1," + strings.Repeat("A", 43) + "="
	for _, c := range []struct {
		name string
		v    Verifier
		h    http.Header
	}{
		{"salesiq 64 KiB signature", siq, hdr(salesIQHeader, strings.Repeat("A", 64<<10))},
		{"salesiq one char too long", siq, hdr(salesIQHeader, strings.Repeat("A", 345))},
		{"github wrong length", gh, hdr(githubHeader, "sha256="+strings.Repeat("0", 65))},
		{"standard webhooks 17 entries", sw, swHdr("id", ts, strings.TrimSpace(strings.Repeat(sig+" ", 17)))},
		{"standard webhooks header over 8 KiB", sw, swHdr("id", ts, sig+strings.Repeat(" ", 8<<10))},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(20, func() { err = c.v.Verify(c.h, body, testNow) })
			if err == nil {
				t.Fatal("accepted")
			}
			if allocs != 0 {
				t.Fatalf("%v allocations before rejecting: work was done on a hopeless request", allocs)
			}
		})
	}
}

func TestSigningHeader(t *testing.T) {
	for name, want := range map[string][2]bool{
		"x-siqsignature":    {true, true},
		"Webhook-Signature": {true, true},
		"webhook-id":        {true, false},
		"WEBHOOK-TIMESTAMP": {true, false},
		"X-Hub-Signature":   {false, false},
		"Authorization":     {false, false},
	} {
		if signed, signature := SigningHeader(name); signed != want[0] || signature != want[1] {
			t.Errorf("%s: got %v, %v; want %v", name, signed, signature, want)
		}
	}
}
