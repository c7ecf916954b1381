package dispatch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/verify"
)

const slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// slackConfig has a rule for every Slack event: what no rule matches
// was kept from the rules by the source, not by the rule.
const slackConfig = `
sources:
  - {name: sl, type: slack, signing_secret: "${SLACK_SIGNING_SECRET}", bot_user_id: U0BOT, app_id: A0001}
  - {name: strict, type: slack, signing_secret: "${SLACK_SIGNING_SECRET}", allow_users: [U0LEAD], allow_channels: [C0123SUPPORT]}
sinks:
  - {name: b, type: count}
rules:
  - {name: take, when: 'event == "slack.block_actions" && action.id == "take"', to: [{sink: b, text: "{{ .user.name }} took {{ .action.value }}"}]}
  - {name: all, when: "true", to: [{sink: b}]}
`

// slackClickPayload is a block_actions payload as Slack builds it.
func slackClickPayload(user string) string {
	return `{"type":"block_actions","user":{"id":"` + user + `","username":"ana","name":"ana","team_id":"T0001"},"api_app_id":"A0001",` +
		`"container":{"type":"message","message_ts":"1726656000.000100","channel_id":"C0123SUPPORT"},"trigger_id":"1234.5678.abcd",` +
		`"team":{"id":"T0001"},"channel":{"id":"C0123SUPPORT","name":"support"},"message":{"ts":"1726656000.000100","thread_ts":"1726655000.000050","text":"Chat 42"},` +
		`"actions":[{"action_id":"take","block_id":"b1","value":"chat-42","type":"button","action_ts":"1726656127.000300"}]}`
}

func slackSetup(t *testing.T, now time.Time) (*dispatch.Router, router.Store) {
	t.Helper()
	rt, st := loadWithStore(t, slackConfig, &countingFactory{}, func(k string) (string, bool) { return slackSecret, k == "SLACK_SIGNING_SECRET" })
	return dispatch.New(rt, st, dispatch.Options{Now: func() time.Time { return now }}), st
}

// slackPost posts body to path as Slack would, signed at signedAt with
// secret, form-encoded when form is set.
func slackPost(r *dispatch.Router, path, secret string, signedAt time.Time, body string, form bool) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if form {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(signedAt.Unix(), 10))
	req.Header.Set("X-Slack-Signature", verify.SignSlack([]byte(secret), signedAt, []byte(body)))
	w := httptest.NewRecorder()
	r.IngestHandler().ServeHTTP(w, req)
	return w
}

func storedEvents(t *testing.T, st router.Store, source string) []*router.EventRecord {
	t.Helper()
	evs, err := st.ListEvents(context.Background(), router.EventFilter{Source: source})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestSlackSignature(t *testing.T) {
	now := time.Unix(1_726_656_130, 0)
	r, st := slackSetup(t, now)
	click := url.Values{"payload": {slackClickPayload("U0456AGENT")}}.Encode()
	for name, w := range map[string]*httptest.ResponseRecorder{
		"other secret": slackPost(r, "/hooks/sl", "not-the-secret", now, click, true),
		"stale":        slackPost(r, "/hooks/sl", slackSecret, now.Add(-6*time.Minute), click, true),
		"future":       slackPost(r, "/hooks/sl", slackSecret, now.Add(6*time.Minute), click, true),
		"challenge":    slackPost(r, "/hooks/sl", "not-the-secret", now, `{"type":"url_verification","challenge":"c"}`, false),
	} {
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, w.Code, w.Body)
		}
	}
	if evs := storedEvents(t, st, "sl"); len(evs) != 0 {
		t.Errorf("%d events stored after refused requests", len(evs))
	}
	if w := slackPost(r, "/hooks/sl", slackSecret, now.Add(-4*time.Minute), click, true); w.Code != http.StatusAccepted {
		t.Errorf("signed 4 minutes ago: %d %s, want 202", w.Code, w.Body)
	}
}

func TestSlackURLVerification(t *testing.T) {
	now := time.Unix(1_726_656_130, 0)
	r, st := slackSetup(t, now)
	w := slackPost(r, "/hooks/sl", slackSecret, now, `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`, false)
	if w.Code != http.StatusOK || w.Body.String() != `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}` || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("answer %d %q (%s)", w.Code, w.Body, w.Header().Get("Content-Type"))
	}
	if evs := storedEvents(t, st, "sl"); len(evs) != 0 {
		t.Errorf("url_verification stored %d events", len(evs))
	}
}

func TestSlackBlockActionsIngest(t *testing.T) {
	now := time.Unix(1_726_656_130, 0)
	r, st := slackSetup(t, now)
	click := url.Values{"payload": {slackClickPayload("U0456AGENT")}}.Encode()
	w := slackPost(r, "/hooks/sl", slackSecret, now, click, true)
	rep := decodeReply(t, w)
	const id = "1234.5678.abcd:1726656127.000300"
	if w.Code != http.StatusAccepted || rep.ID != id || !slices.Equal(rep.Matched, []string{"take", "all"}) || rep.Deliveries != 2 {
		t.Fatalf("click: %d %s", w.Code, w.Body)
	}
	ev, err := st.GetEvent(context.Background(), "sl", id)
	if err != nil || ev.Name != "slack.block_actions" || ev.Quarantined {
		t.Fatalf("stored %+v, %v", ev, err)
	}
	// Slack retries with the same body, newly signed.
	w = slackPost(r, "/hooks/sl", slackSecret, now.Add(time.Second), click, true)
	if rep := decodeReply(t, w); w.Code != http.StatusOK || rep.ID != id {
		t.Errorf("retry: %d %s, want 200 with the stored id", w.Code, w.Body)
	}
	if evs := storedEvents(t, st, "sl"); len(evs) != 1 {
		t.Errorf("%d events stored, want 1", len(evs))
	}
}

// The bot's own message, its edit of one, and a click by a user or in a
// channel outside the allow lists are stored, and match no rule, not
// even when: "true".
func TestSlackIgnoredEventsMatchNoRule(t *testing.T) {
	now := time.Unix(1_726_656_130, 0)
	r, st := slackSetup(t, now)
	for name, c := range map[string]struct{ path, body, id string }{
		"bot's message": {"/hooks/sl", `{"type":"event_callback","team_id":"T0001","api_app_id":"A0001","event_id":"Ev1",` +
			`"event":{"type":"message","user":"U0BOT","bot_id":"B0BOT","channel":"C0123SUPPORT","text":"Chat 42 is waiting","ts":"1.1"}}`, "Ev1"},
		"bot's edit": {"/hooks/sl", `{"type":"event_callback","team_id":"T0001","event_id":"Ev2",` +
			`"event":{"type":"message","subtype":"message_changed","channel":"C0123SUPPORT","message":{"bot_id":"B0BOT","app_id":"A0001","text":"x"}}}`, "Ev2"},
		"user outside allow_users":       {"/hooks/strict", url.Values{"payload": {slackClickPayload("U0456AGENT")}}.Encode(), "1234.5678.abcd:1726656127.000300"},
		"channel outside allow_channels": {"/hooks/strict", `{"type":"event_callback","event_id":"Ev3","event":{"type":"message","user":"U0LEAD","channel":"C0OTHER","ts":"1.2"}}`, "Ev3"},
	} {
		w := slackPost(r, c.path, slackSecret, now, c.body, !strings.HasPrefix(c.body, "{"))
		rep := decodeReply(t, w)
		if w.Code != http.StatusAccepted || rep.ID != c.id || len(rep.Matched) != 0 || rep.Deliveries != 0 {
			t.Errorf("%s: %d %s, want 202, stored, nothing matched", name, w.Code, w.Body)
			continue
		}
		src := strings.TrimPrefix(c.path, "/hooks/")
		if ev, err := st.GetEvent(context.Background(), src, c.id); err != nil || ev.Quarantined || len(ev.Matched) != 0 {
			t.Errorf("%s: stored %+v, %v", name, ev, err)
		}
	}
	// A person's message in the same source matches.
	w := slackPost(r, "/hooks/sl", slackSecret, now, `{"type":"event_callback","event_id":"Ev4","event":{"type":"message","user":"U0456AGENT","channel":"C0123SUPPORT","ts":"1.3"}}`, false)
	if rep := decodeReply(t, w); !slices.Equal(rep.Matched, []string{"all"}) {
		t.Errorf("a person's message: %s, want rule all", w.Body)
	}
	w = slackPost(r, "/hooks/strict", slackSecret, now, url.Values{"payload": {slackClickPayload("U0LEAD")}}.Encode(), true)
	if rep := decodeReply(t, w); !slices.Equal(rep.Matched, []string{"take", "all"}) {
		t.Errorf("an allowed user's click: %s, want take and all", w.Body)
	}
}
