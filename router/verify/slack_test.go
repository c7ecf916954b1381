package verify

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slackRequest signs body as Slack does, at ts.
func slackRequest(secret string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("X-Slack-Signature", SignSlack([]byte(secret), ts, body))
	return h
}

func TestSlack(t *testing.T) {
	// Slack's documented example: signing secret, timestamp, body and
	// the signature it gives.
	const docSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	docBody := []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
	docTS := time.Unix(1531420618, 0)
	v, err := NewSlack([][]byte{[]byte(docSecret)})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", "1531420618")
	h.Set("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")
	if err := v.Verify(h, docBody, docTS.Add(time.Minute)); err != nil {
		t.Fatalf("Slack's documented example: %v", err)
	}
	if got := SignSlack([]byte(docSecret), docTS, docBody); got != h.Get("X-Slack-Signature") {
		t.Errorf("SignSlack = %s, want Slack's", got)
	}

	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"event_callback"}`)
	for name, c := range map[string]struct {
		h    http.Header
		body []byte
		ok   bool
		why  string
	}{
		"good":                   {slackRequest(docSecret, now, body), body, true, ""},
		"4m59s old":              {slackRequest(docSecret, now.Add(-299*time.Second), body), body, true, ""},
		"stale":                  {slackRequest(docSecret, now.Add(-301*time.Second), body), body, false, "in the past"},
		"future":                 {slackRequest(docSecret, now.Add(301*time.Second), body), body, false, "in the future"},
		"other secret":           {slackRequest("another-secret", now, body), body, false, "does not match"},
		"body changed":           {slackRequest(docSecret, now, body), []byte(`{"type":"event_callback" }`), false, "does not match"},
		"no signature":           {http.Header{"X-Slack-Request-Timestamp": {"1700000000"}}, body, false, "missing"},
		"no timestamp":           {http.Header{"X-Slack-Signature": {"v0=00"}}, body, false, "missing"},
		"timestamp not a number": {http.Header{"X-Slack-Request-Timestamp": {"-1700000000"}, "X-Slack-Signature": {"v0=00"}}, body, false, "not a unix time"},
		"v1 signature":           {http.Header{"X-Slack-Request-Timestamp": {"1700000000"}, "X-Slack-Signature": {"v1=" + strings.TrimPrefix(SignSlack([]byte(docSecret), now, body), "v0=")}}, body, false, "not a v0="},
		"upper-case hex":         {http.Header{"X-Slack-Request-Timestamp": {"1700000000"}, "X-Slack-Signature": {strings.ToUpper(SignSlack([]byte(docSecret), now, body))}}, body, false, "v0="},
		"timestamp not the signed": {func() http.Header {
			h := slackRequest(docSecret, now, body)
			h.Set("X-Slack-Request-Timestamp", "1700000001")
			return h
		}(), body, false, "does not match"},
	} {
		err := v.Verify(c.h, c.body, now)
		if c.ok != (err == nil) {
			t.Errorf("%s: %v, want ok=%v", name, err, c.ok)
			continue
		}
		if err != nil && (!errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), c.why)) {
			t.Errorf("%s: %v, want ErrUnauthorized saying %q", name, err, c.why)
		}
		if err != nil && strings.Contains(err.Error(), docSecret) {
			t.Errorf("%s: the error quotes the secret", name)
		}
	}
	if _, err := NewSlack(nil); err == nil {
		t.Error("NewSlack without a secret succeeded")
	}
	if _, err := NewSlack([][]byte{{}}); err == nil {
		t.Error("NewSlack with an empty secret succeeded")
	}
}
