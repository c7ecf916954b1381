package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// slackTolerance is Slack's own advice: a request whose timestamp is more
// than five minutes off is refused, so a captured request cannot be
// replayed later. It is fixed, not configurable: Slack stamps each request
// when it sends it, and a wider window only helps a replayer.
const slackTolerance = 5 * time.Minute

// slackMaxHeaderLen bounds the timestamp and signature headers; a genuine
// signature is 67 bytes ("v0=" and 64 hex digits).
const slackMaxHeaderLen = 256

var (
	errSlackTimestamp = reject("x-slack-request-timestamp is not a unix time in seconds")
	errSlackVersion   = reject("x-slack-signature is not a v0= signature")
	errSlackMismatch  = reject("x-slack-signature does not match the signing secret")
)

type slack struct {
	keys    [][]byte
	ts, sig headerReader
}

// NewSlack returns a Verifier for Slack's request signing: X-Slack-Signature
// is "v0=" and the hex HMAC-SHA256, keyed by the app's signing secret, of
// "v0:{X-Slack-Request-Timestamp}:{body}"; the timestamp must be within five
// minutes of now. Any of secrets is accepted, so a rotation can list two.
// It fails for no secrets or an empty one (the error names its position,
// never its value).
func NewSlack(secrets [][]byte) (Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("slack: a signing secret is required")
	}
	for i, s := range secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("slack: signing secret #%d is empty", i+1)
		}
	}
	return &slack{
		keys: secrets,
		ts:   newHeaderReader("X-Slack-Request-Timestamp", slackMaxHeaderLen),
		sig:  newHeaderReader("X-Slack-Signature", slackMaxHeaderLen),
	}, nil
}

func (v *slack) Verify(h http.Header, body []byte, now time.Time) error {
	ts, err := v.ts.get(h)
	if err != nil {
		return err
	}
	sig, err := v.sig.get(h)
	if err != nil {
		return err
	}
	// The timestamp first: a stale replay costs no MAC.
	sec, ok := parseUnixSeconds(ts)
	if !ok {
		return errSlackTimestamp
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > slackTolerance || skew < -slackTolerance {
		dir := "past"
		if skew < 0 {
			dir, skew = "future", -skew
		}
		return reject(fmt.Sprintf("x-slack-request-timestamp is %s in the %s, beyond the %s tolerance",
			skew.Truncate(time.Millisecond), dir, slackTolerance))
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return errSlackVersion
	}
	// The hex forms are compared in constant time, lower-case as Slack
	// sends them: decoding first would add a path that depends on the
	// attacker's bytes.
	want := make([]byte, hex.EncodedLen(sha256.Size))
	match := false
	for _, key := range v.keys {
		hex.Encode(want, slackMAC(key, ts, body))
		if hmac.Equal([]byte(hexSig), want) {
			match = true
		}
	}
	if !match {
		return errSlackMismatch
	}
	return nil
}

// slackMAC is the HMAC of "v0:{ts}:{body}", streamed so the body is not
// copied.
func slackMAC(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("v0:"))
	m.Write([]byte(ts))
	m.Write([]byte{':'})
	m.Write(body)
	return m.Sum(nil)
}

// SignSlack returns the X-Slack-Signature value Slack would send for body
// at ts (whole unix seconds, the X-Slack-Request-Timestamp the caller must
// send with it), for `hookroute send` and tests.
func SignSlack(secret []byte, ts time.Time, body []byte) string {
	return "v0=" + hex.EncodeToString(slackMAC(secret, strconv.FormatInt(ts.Unix(), 10), body))
}
