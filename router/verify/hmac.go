package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// HMACConfig configures a generic HMAC-SHA256 verifier for senders that put
// the MAC of the raw body in a single header (Shopify, Typeform, many
// in-house systems).
type HMACConfig struct {
	// Header is the name of the header carrying the signature; matched
	// case-insensitively.
	Header string
	// Encoding is how the sender encodes the 32-byte MAC: "hex" (lowercase,
	// as produced by Go, Python's hexdigest and Node's digest("hex")) or
	// "base64" (standard alphabet, padded). Only the canonical spelling is
	// accepted, so a signature has exactly one valid form.
	Encoding string
	// Prefix is literal text before the encoded MAC, such as "sha256=".
	// It is matched exactly, including case.
	Prefix string
	// Secrets are the HMAC keys, used as raw bytes. A signature made with
	// any of them is accepted, which is what makes rotation possible.
	Secrets [][]byte
}

type hmacVerifier struct {
	hdr         headerReader
	prefix      string
	encode      func(dst, mac []byte)
	wantLen     int
	secrets     [][]byte
	errLength   error
	errMismatch error
}

// NewHMAC returns a Verifier for a MAC of the raw body in one header. It
// fails on an empty or malformed header name, an encoding other than "hex"
// or "base64", no secrets, or an empty secret: an empty key would make the
// "signature" something anyone can compute. The secrets are copied.
func NewHMAC(c HMACConfig) (Verifier, error) {
	if !validHeaderName(c.Header) {
		return nil, fmt.Errorf("hmac: header name %q is empty or not a valid HTTP header name", c.Header)
	}
	v := &hmacVerifier{hdr: newHeaderReader(c.Header, 0), prefix: c.Prefix}
	switch c.Encoding {
	case "hex":
		v.encode = func(dst, mac []byte) { hex.Encode(dst, mac) }
		v.wantLen = len(c.Prefix) + hex.EncodedLen(sha256.Size)
	case "base64":
		v.encode = base64.StdEncoding.Encode
		v.wantLen = len(c.Prefix) + base64.StdEncoding.EncodedLen(sha256.Size)
	default:
		return nil, fmt.Errorf("hmac: encoding %q, want \"hex\" or \"base64\"", c.Encoding)
	}
	secrets, err := copySecrets(c.Secrets)
	if err != nil {
		return nil, fmt.Errorf("hmac: %w", err)
	}
	v.secrets = secrets
	v.errLength = reject(c.Header + " has the wrong length")
	v.errMismatch = reject(c.Header + " does not match any configured secret")
	return v, nil
}

// copySecrets detaches the verifier from the caller's buffers, which may be
// reused or zeroed after construction.
func copySecrets(secrets [][]byte) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, errors.New("at least one secret is required")
	}
	out := make([][]byte, len(secrets))
	for i, s := range secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("secret #%d is empty", i+1)
		}
		out[i] = append([]byte(nil), s...)
	}
	return out, nil
}

func (v *hmacVerifier) Verify(h http.Header, body []byte, _ time.Time) error {
	got, err := v.hdr.get(h)
	if err != nil {
		return err
	}
	// The length is public (it follows from the config), so checking it
	// first costs nothing in secrecy and skips hashing a large body for
	// obviously wrong headers.
	if len(got) != v.wantLen {
		return v.errLength
	}
	// Comparing the encoded form (prefix included) against the one we would
	// send, rather than decoding the header, accepts only the canonical
	// spelling: no uppercase hex, no missing padding, no stray bits.
	gotB := []byte(got)
	want := make([]byte, v.wantLen)
	copy(want, v.prefix)
	ok := false
	for _, secret := range v.secrets {
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		v.encode(want[len(v.prefix):], m.Sum(nil))
		// Every secret is tried even after a match so the time taken does
		// not reveal which secret signed the request.
		if hmac.Equal(gotB, want) {
			ok = true
		}
	}
	if !ok {
		return v.errMismatch
	}
	return nil
}

// githubHeader is the SHA-256 signature header. The legacy X-Hub-Signature
// (HMAC-SHA1) is deliberately never read: accepting it would let an
// attacker pick the weaker scheme.
const githubHeader = "X-Hub-Signature-256"

// NewGitHub returns a Verifier for GitHub's X-Hub-Signature-256:
// "sha256=" followed by the lowercase hex HMAC-SHA256 of the raw body, keyed
// with the webhook secret as raw bytes. Several secrets may be given for
// rotation.
func NewGitHub(secrets [][]byte) (Verifier, error) {
	v, err := NewHMAC(HMACConfig{Header: githubHeader, Encoding: "hex", Prefix: "sha256=", Secrets: secrets})
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	return v, nil
}

// SignGitHub returns the X-Hub-Signature-256 value for body, as GitHub
// would send it; used by `hookroute send` and tests.
func SignGitHub(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
