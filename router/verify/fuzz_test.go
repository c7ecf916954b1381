package verify

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Each target checks three things on every input:
//   - Verify never panics and only fails with ErrUnauthorized;
//   - it accepts exactly when an oracle written from the scheme's definition
//     (not from the implementation) says the input is genuinely signed with
//     the test key;
//   - a known-good request with one byte changed, at a position and by a
//     non-zero XOR that the fuzzer steers through its inputs, is rejected.

// mutateOne XORs exactly one byte of the concatenation of parts with a
// non-zero value, both chosen by hashing seed, and returns copies of the
// parts with the change applied. Deriving the choice from the fuzz input
// lets the fuzzer explore every position without a dedicated argument.
func mutateOne(seed []byte, parts ...[]byte) [][]byte {
	h := fnv.New64a()
	h.Write(seed)
	x := h.Sum64()
	total := 0
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = append([]byte(nil), p...)
		total += len(p)
	}
	pos := int(x % uint64(total))
	delta := byte(x >> 56)
	if delta == 0 {
		delta = 1
	}
	for i := range out {
		if pos < len(out[i]) {
			out[i][pos] ^= delta
			return out
		}
		pos -= len(out[i])
	}
	panic("unreachable")
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error %v does not wrap ErrUnauthorized", err)
	}
}

func FuzzSalesIQVerify(f *testing.F) {
	k := testKeys(f)
	pub := &k[0].PublicKey
	v := mustVerifier(f)(NewSalesIQ([]*rsa.PublicKey{pub}))
	goodBody := []byte(salesIQBody)
	goodSig := mustSignSalesIQ(f, k[0], goodBody)
	raw, _ := base64.StdEncoding.DecodeString(goodSig)

	f.Add(goodBody, goodSig)
	f.Add(goodBody, "")
	f.Add([]byte{}, goodSig)
	f.Add(goodBody[1:], goodSig)
	f.Add(goodBody, goodSig[:len(goodSig)-4])
	f.Add(goodBody, goodSig+"\n")
	f.Add(goodBody, hex.EncodeToString(raw))
	f.Add(goodBody, base64.RawStdEncoding.EncodeToString(raw))
	f.Add(goodBody, mustSignSalesIQ(f, k[2], goodBody))
	f.Add([]byte("{}"), strings.Repeat("A", 344))
	f.Add([]byte(nil), strings.Repeat("/", 10000))

	// sigValid is the definition of a genuine x-siqsignature: the canonical
	// standard-base64 spelling of a PKCS#1 v1.5 SHA-256 signature by the key.
	sigValid := func(body []byte, sig string) bool {
		dec, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || base64.StdEncoding.EncodeToString(dec) != sig {
			return false
		}
		d := sha256.Sum256(body)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], dec) == nil
	}

	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		err := v.Verify(http.Header{"X-Siqsignature": {sig}}, body, testNow)
		checkErr(t, err)
		if want := sigValid(body, sig); (err == nil) != want {
			t.Fatalf("Verify error = %v, oracle says valid = %v", err, want)
		}
		// Without the private key the fuzzer can only replay the seed:
		// PKCS#1 v1.5 is deterministic and the encoding canonical.
		if err == nil && (!bytes.Equal(body, goodBody) || sig != goodSig) {
			t.Fatal("accepted a request that was not signed with the test key")
		}

		m := mutateOne(append(append([]byte(nil), body...), sig...), goodBody, []byte(goodSig))
		if err := v.Verify(http.Header{"X-Siqsignature": {string(m[1])}}, m[0], testNow); err == nil {
			t.Fatalf("accepted the known-good pair with one byte changed: body %q sig %q", m[0], m[1])
		}
	})
}

func FuzzGitHub(f *testing.F) {
	secret := []byte("fuzz-github-secret")
	v := mustVerifier(f)(NewGitHub([][]byte{secret}))
	goodBody := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	goodSig := SignGitHub(secret, goodBody)

	f.Add(goodBody, goodSig)
	f.Add(goodBody, strings.ToUpper(goodSig))
	f.Add(goodBody, strings.TrimPrefix(goodSig, "sha256="))
	f.Add(goodBody, "sha1="+strings.TrimPrefix(goodSig, "sha256=")[:40])
	f.Add(goodBody, goodSig+"0")
	f.Add([]byte{}, "")
	f.Add([]byte("x"), "sha256=")

	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		// A correct legacy SHA-1 signature is always present: it must never
		// be what gets a request in.
		m1 := hmac.New(sha1.New, secret)
		m1.Write(body)
		h := http.Header{
			"X-Hub-Signature-256": {sig},
			"X-Hub-Signature":     {"sha1=" + hex.EncodeToString(m1.Sum(nil))},
		}
		err := v.Verify(h, body, testNow)
		checkErr(t, err)
		if (err == nil) != (sig == want) {
			t.Fatalf("Verify error = %v, but signature valid = %v", err, sig == want)
		}

		mut := mutateOne(append(append([]byte(nil), body...), sig...), goodBody, []byte(goodSig))
		if err := v.Verify(http.Header{"X-Hub-Signature-256": {string(mut[1])}}, mut[0], testNow); err == nil {
			t.Fatalf("accepted the known-good pair with one byte changed: body %q sig %q", mut[0], mut[1])
		}
	})
}

func FuzzHMAC(f *testing.F) {
	secret := []byte("fuzz-hmac-secret")
	hexV := mustVerifier(f)(NewHMAC(HMACConfig{Header: "X-Signature", Encoding: "hex", Secrets: [][]byte{secret}}))
	b64V := mustVerifier(f)(NewHMAC(HMACConfig{Header: "X-Signature", Encoding: "base64", Prefix: "sha256=", Secrets: [][]byte{secret}}))
	goodBody := []byte(`{"order":1001,"total":"9.99"}`)
	goodHex := hmacHex(secret, goodBody)
	goodB64 := "sha256=" + hmacB64(secret, goodBody)

	f.Add(goodBody, goodHex, false)
	f.Add(goodBody, goodB64, true)
	f.Add(goodBody, goodHex, true)
	f.Add(goodBody, goodB64, false)
	f.Add(goodBody, strings.TrimRight(goodB64, "="), true)
	f.Add([]byte{}, "", false)

	f.Fuzz(func(t *testing.T, body []byte, sig string, useBase64 bool) {
		v, want, goodSig := hexV, hmacHex(secret, body), goodHex
		if useBase64 {
			v, want, goodSig = b64V, "sha256="+hmacB64(secret, body), goodB64
		}
		err := v.Verify(http.Header{"X-Signature": {sig}}, body, testNow)
		checkErr(t, err)
		if (err == nil) != (sig == want) {
			t.Fatalf("Verify error = %v, but signature valid = %v", err, sig == want)
		}

		mut := mutateOne(append(append([]byte(nil), body...), sig...), goodBody, []byte(goodSig))
		if err := v.Verify(http.Header{"X-Signature": {string(mut[1])}}, mut[0], testNow); err == nil {
			t.Fatalf("accepted the known-good pair with one byte changed: body %q sig %q", mut[0], mut[1])
		}
	})
}

func FuzzStandardWebhooks(f *testing.F) {
	secret := swVectorSecret
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	v := mustVerifier(f)(NewStandardWebhooks([]string{secret}, 0))
	const goodID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	goodTS := strconv.FormatInt(testNow.Unix(), 10)
	goodBody := []byte(`{"type":"user.created","data":{"id":"u_1"}}`)
	goodSig := swSign(f, secret, goodID, testNow.Unix(), goodBody)

	f.Add(goodID, goodTS, goodSig, goodBody)
	f.Add(goodID, goodTS, "v1a,AAAA "+goodSig, goodBody)
	f.Add(goodID, goodTS, strings.Repeat("v1,AAAA ", 16)+goodSig, goodBody)
	f.Add(goodID, "+"+goodTS, goodSig, goodBody)
	f.Add(goodID, "9223372036854775807", goodSig, goodBody)
	f.Add(swVectorID, strconv.Itoa(swVectorTS), swVectorSig, []byte(swVectorBody))
	f.Add("", "", "", []byte{})

	// swValid restates the spec: every header present and at most 8 KiB, a
	// plain decimal timestamp within ±5 minutes, at most 16 space-separated
	// entries, and one of them exactly "v1," + base64(HMAC(key, id.ts.body)).
	swValid := func(id, ts, sig string, body []byte) bool {
		for _, s := range []string{id, ts, sig} {
			if s == "" || len(s) > 8<<10 {
				return false
			}
		}
		if ts[0] == '+' || ts[0] == '-' {
			return false
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || sec < testNow.Unix()-300 || sec > testNow.Unix()+300 {
			return false
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		n, found := 0, false
		for _, e := range strings.Split(sig, " ") {
			if e == "" {
				continue
			}
			n++
			found = found || e == want
		}
		return n <= 16 && found
	}
	hdrs := func(id, ts, sig string) http.Header {
		return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}
	}

	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		err := v.Verify(hdrs(id, ts, sig), body, testNow)
		checkErr(t, err)
		if want := swValid(id, ts, sig, body); (err == nil) != want {
			t.Fatalf("Verify error = %v, oracle says valid = %v", err, want)
		}

		seed := []byte(id + "\x00" + ts + "\x00" + sig + "\x00" + string(body))
		m := mutateOne(seed, []byte(goodID), []byte(goodTS), []byte(goodSig), goodBody)
		if err := v.Verify(hdrs(string(m[0]), string(m[1]), string(m[2])), m[3], testNow); err == nil {
			t.Fatalf("accepted the known-good message with one byte changed: %q %q %q %q", m[0], m[1], m[2], m[3])
		}
	})
}
