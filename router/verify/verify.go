package verify

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// ErrUnauthorized is the only error the HTTP layer should show a caller when
// Verify fails: one generic answer gives a prober no hint about which check
// it tripped (missing header, bad encoding, wrong key, stale timestamp).
//
// Verify returns errors that wrap ErrUnauthorized (test with errors.Is) and
// add a reason meant for logs. Reasons never include secret material or the
// presented signature value, so logging them is safe.
var ErrUnauthorized = errors.New("unauthorized")

// Verifier decides whether a request really comes from the configured
// sender.
//
// body must be the raw request body, byte for byte as received. now is
// passed in rather than read from the clock so that callers and tests
// control time-window checks. A nil error means the request is authentic;
// any other error wraps ErrUnauthorized. Implementations are immutable after
// construction and safe for concurrent use, and they never panic, whatever
// the headers and body contain.
type Verifier interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

// None returns a Verifier that accepts every request. It exists for sources
// that are authenticated some other way (a private network, a proxy that
// checks credentials) and must only be used when the config asks for it by
// name, never as a fallback for a missing or broken verifier config.
func None() Verifier { return none{} }

type none struct{}

func (none) Verify(http.Header, []byte, time.Time) error { return nil }

// rejection carries the log-only reason for a failed check while still
// matching ErrUnauthorized. Reasons are fixed strings or built from config
// and public facts, never from request secrets.
type rejection struct{ reason string }

func (r *rejection) Error() string { return ErrUnauthorized.Error() + ": " + r.reason }
func (r *rejection) Unwrap() error { return ErrUnauthorized }

func reject(reason string) error { return &rejection{reason: reason} }

// headerReader looks up one single-valued header and precomputes its
// rejection errors, so the common failure paths do not allocate per request.
type headerReader struct {
	canon       string // canonical MIME form, the key net/http uses
	errMissing  error
	errMultiple error
	errTooLong  error
	maxLen      int // 0: no limit here, the verifier checks an exact length
}

// newHeaderReader keeps name as given (the sender's documented spelling) for
// log messages, which is what an operator will search for.
func newHeaderReader(name string, maxLen int) headerReader {
	return headerReader{
		canon:       http.CanonicalHeaderKey(name),
		errMissing:  reject("missing or empty " + name + " header"),
		errMultiple: reject("more than one " + name + " header"),
		errTooLong:  reject(name + " header too long"),
		maxLen:      maxLen,
	}
}

// get returns the header's only value. net/http canonicalises header keys,
// but callers (tests, other transports, hand-built maps) may not, so keys are
// matched ASCII-case-insensitively. Repeated headers are refused: a sender
// signs one value, and letting a proxy or attacker add a second one would
// make "which value did we check?" ambiguous and multiply the work done.
func (r *headerReader) get(h http.Header) (string, error) {
	var (
		v string
		n int
	)
	for k, vs := range h {
		if k != r.canon && !asciiEqualFold(k, r.canon) {
			continue
		}
		for _, x := range vs {
			if n == 0 {
				v = x
			}
			n++
		}
	}
	switch {
	case n > 1:
		return "", r.errMultiple
	case v == "":
		return "", r.errMissing
	case r.maxLen > 0 && len(v) > r.maxLen:
		return "", r.errTooLong
	}
	return v, nil
}

// asciiEqualFold is strings.EqualFold restricted to ASCII: header names are
// tokens, and Unicode folding would let e.g. "ſ" (U+017F) stand in for "s".
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// validHeaderName reports whether name is an RFC 9110 token, so that a typo
// in the config (a space, a colon) fails at startup instead of silently
// rejecting every request.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return false
		}
	}
	return true
}

// tokenPunct is the punctuation RFC 9110 allows in a token (tchar).
const tokenPunct = "!#$%&'*+-.^_`|~"

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(tokenPunct, c) >= 0
}

// signingHeaders are the headers of the schemes hookroute signs its own
// outbound webhooks with (SignSalesIQ, SignStandardWebhooks), in canonical
// form; true for those that hold the signature itself, false for those
// that the signature covers.
var signingHeaders = map[string]bool{
	"X-Siqsignature":    true,
	"Webhook-Signature": true,
	"Webhook-Id":        false,
	"Webhook-Timestamp": false,
}

// SigningHeader reports whether an outbound webhook signed with SignSalesIQ
// or SignStandardWebhooks carries the header name (any case), so that the
// signer can keep its config from setting it, and whether the header holds
// the signature itself, which, unlike an id or a timestamp, depends on the
// key and on the exact body sent. GitHub's scheme is not among them: only
// `hookroute send` and tests sign with it.
func SigningHeader(name string) (signed, signature bool) {
	signature, signed = signingHeaders[http.CanonicalHeaderKey(name)]
	return signed, signature
}
