package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	swSecretPrefix = "whsec_"
	// defaultSWTolerance is the reference library's window. It bounds how
	// long a captured request can be replayed while allowing for clock skew
	// and queueing on the sender's side.
	defaultSWTolerance = 5 * time.Minute
	// swMaxHeaderLen and swMaxSignatures bound the work a single request can
	// demand: without them an attacker could send thousands of candidate
	// signatures and have each one compared against every secret.
	swMaxHeaderLen  = 8 << 10
	swMaxSignatures = 16
	// swMaxUnix (9999-12-31T23:59:59Z) keeps time.Unix far from int64
	// overflow; no genuine timestamp comes near it.
	swMaxUnix = 253402300799
)

var (
	errSWTimestamp    = reject("webhook-timestamp is not a unix time in seconds")
	errSWTooMany      = reject(fmt.Sprintf("webhook-signature has more than %d entries", swMaxSignatures))
	errSWNoV1         = reject("webhook-signature has no v1 entry")
	errSWMismatch     = reject("no v1 webhook-signature entry matches any configured secret")
	errSWSecretFormat = errors.New("is not valid base64 (expected whsec_<base64>)")
)

type standardWebhooks struct {
	keys      [][]byte
	tolerance time.Duration
	id, ts    headerReader
	sig       headerReader
}

// NewStandardWebhooks returns a Verifier for the Standard Webhooks scheme
// (used by Svix and many SaaS senders): HMAC-SHA256 over
// "{webhook-id}.{webhook-timestamp}.{body}", sent as space-separated
// "v1,<base64>" entries in webhook-signature; any v1 entry that matches any
// secret is accepted, which is how senders rotate.
//
// Secrets have the form "whsec_<base64>"; the decoded bytes are the HMAC
// key. A secret without the prefix is base64-decoded too, because people
// paste the part after "whsec_" just as often as the whole string.
//
// webhook-timestamp must be within tolerance of now in either direction; a
// tolerance of 0 means the spec's 5 minutes. It fails for no secrets, an
// empty or undecodable secret (the error names the secret's position, never
// its value) or a negative tolerance.
func NewStandardWebhooks(secrets []string, tolerance time.Duration) (Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("standard webhooks: at least one secret is required")
	}
	if tolerance < 0 {
		return nil, errors.New("standard webhooks: tolerance must not be negative")
	}
	if tolerance == 0 {
		tolerance = defaultSWTolerance
	}
	v := &standardWebhooks{
		tolerance: tolerance,
		id:        newHeaderReader("webhook-id", swMaxHeaderLen),
		ts:        newHeaderReader("webhook-timestamp", swMaxHeaderLen),
		sig:       newHeaderReader("webhook-signature", swMaxHeaderLen),
	}
	for i, s := range secrets {
		key, err := decodeSWSecret(s)
		if err != nil {
			return nil, fmt.Errorf("standard webhooks: secret #%d %w", i+1, err)
		}
		v.keys = append(v.keys, key)
	}
	return v, nil
}

// decodeSWSecret deliberately drops the decoder's error: it is harmless
// today, but an error built from secret input is one refactor away from
// quoting it.
func decodeSWSecret(secret string) ([]byte, error) {
	// Surrounding whitespace is never part of base64 and usually comes from
	// an env file or a YAML block scalar.
	s := strings.TrimSpace(secret)
	s = strings.TrimPrefix(s, swSecretPrefix)
	if s == "" {
		return nil, errors.New("is empty")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) == 0 {
		return nil, errSWSecretFormat
	}
	return key, nil
}

func (v *standardWebhooks) Verify(h http.Header, body []byte, now time.Time) error {
	id, err := v.id.get(h)
	if err != nil {
		return err
	}
	ts, err := v.ts.get(h)
	if err != nil {
		return err
	}
	sigs, err := v.sig.get(h)
	if err != nil {
		return err
	}
	// Cheapest first: replays of old captures and oversized lists are
	// turned away before any MAC is computed.
	if err := v.checkTimestamp(ts, now); err != nil {
		return err
	}
	if err := checkSWEntries(sigs); err != nil {
		return err
	}
	if !v.anyMatch(id, ts, sigs, body) {
		return errSWMismatch
	}
	return nil
}

func (v *standardWebhooks) checkTimestamp(ts string, now time.Time) error {
	sec, ok := parseUnixSeconds(ts)
	if !ok {
		return errSWTimestamp
	}
	skew := now.Sub(time.Unix(sec, 0))
	if skew <= v.tolerance && skew >= -v.tolerance {
		return nil
	}
	// The skew is worth logging: a steady value points at a wrong clock
	// rather than at replays.
	dir := "past"
	if skew < 0 {
		dir, skew = "future", -skew
	}
	return reject(fmt.Sprintf("webhook-timestamp is %s in the %s, beyond the %s tolerance",
		skew.Truncate(time.Millisecond), dir, v.tolerance))
}

// checkSWEntries counts the entries of webhook-signature and requires a v1
// one, so that an oversized or hopeless list costs no HMAC work at all.
func checkSWEntries(sigs string) error {
	n, v1 := 0, 0
	for entry := range strings.SplitSeq(sigs, " ") {
		if entry == "" {
			continue
		}
		if n++; n > swMaxSignatures {
			return errSWTooMany
		}
		if strings.HasPrefix(entry, "v1,") {
			v1++
		}
	}
	if v1 == 0 {
		return errSWNoV1
	}
	return nil
}

// anyMatch reports whether a v1 entry of sigs matches any key.
func (v *standardWebhooks) anyMatch(id, ts, sigs string, body []byte) bool {
	want := make([]byte, base64.StdEncoding.EncodedLen(sha256.Size))
	var mac []byte
	ok := false
	for _, key := range v.keys {
		m := hmac.New(sha256.New, key)
		writeSWContent(m, id, ts, body)
		mac = m.Sum(mac[:0])
		base64.StdEncoding.Encode(want, mac)
		for entry := range strings.SplitSeq(sigs, " ") {
			version, sig, found := strings.Cut(entry, ",")
			// Other versions (v1a is ed25519) are skipped, not failed: a
			// sender may send them alongside v1.
			if !found || version != "v1" {
				continue
			}
			// The encoded forms are compared, as the reference library
			// does, so only the canonical base64 spelling matches.
			if hmac.Equal([]byte(sig), want) {
				ok = true
			}
		}
	}
	return ok
}

// writeSWContent streams the signed content into the MAC so the body, which
// may be large, is never copied.
func writeSWContent(m hash.Hash, id, ts string, body []byte) {
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
}

// parseUnixSeconds accepts only ASCII digits: strconv would also take a sign,
// and the spec's timestamp is a plain non-negative integer. The header is
// already capped at swMaxHeaderLen, so the digit scan is bounded.
func parseUnixSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec > swMaxUnix {
		return 0, false
	}
	return sec, true
}

// SignStandardWebhooks returns one "v1,<base64>" webhook-signature entry for
// the message, so `hookroute send` and tests can produce requests that any
// Standard Webhooks receiver, this one included, accepts. ts is sent as whole
// unix seconds; the caller must put the same value in webhook-timestamp.
// Secret decoding and its errors are those of NewStandardWebhooks.
func SignStandardWebhooks(secret string, id string, ts time.Time, body []byte) (string, error) {
	key, err := decodeSWSecret(secret)
	if err != nil {
		return "", fmt.Errorf("standard webhooks: secret %w", err)
	}
	m := hmac.New(sha256.New, key)
	writeSWContent(m, id, strconv.FormatInt(ts.Unix(), 10), body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}
