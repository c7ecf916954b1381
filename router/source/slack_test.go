package source

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

// slackClick is a block_actions payload as Slack sends it (fields trimmed
// to those the view reads and a few it does not).
const slackClick = `{"type":"block_actions","user":{"id":"U0456AGENT","username":"ana","name":"ana","team_id":"T0001"},
"api_app_id":"A0001","token":"XXYYZZ","container":{"type":"message","message_ts":"1726656000.000100","channel_id":"C0123SUPPORT","is_ephemeral":false},
"trigger_id":"1234567890.0987654321.abcdef","team":{"id":"T0001","domain":"zylker"},"channel":{"id":"C0123SUPPORT","name":"support"},
"message":{"type":"message","user":"U0BOT","ts":"1726656000.000100","thread_ts":"1726655000.000050","text":"Chat 42 is waiting"},
"response_url":"https://hooks.slack.com/actions/T0001/1/x","actions":[{"action_id":"take","block_id":"b1","text":{"type":"plain_text","text":"Take it"},"value":"{{ .x }} ${A} \" ok","type":"button","action_ts":"1726656127.000300"}]}`

// formBody is payload as Slack posts an interactivity request.
func formBody(payload string) []byte {
	return []byte(url.Values{"payload": {payload}}.Encode())
}

func TestSlackBlockActions(t *testing.T) {
	v, err := Slack{}.Decode(&router.Incoming{Source: "sl", Body: formBody(slackClick), Headers: map[string]string{}, ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "slack.block_actions" || v.ID != "1234567890.0987654321.abcdef:1726656127.000300" || v.Ignored != "" {
		t.Fatalf("name %q id %q ignored %q", v.Name, v.ID, v.Ignored)
	}
	d := v.Data()
	for path, want := range map[[2]string]string{
		{"action", "id"}: "take", {"action", "value"}: "{{ .x }} ${A} \" ok", {"user", "id"}: "U0456AGENT", {"user", "name"}: "ana",
		{"team", "id"}: "T0001", {"channel", "id"}: "C0123SUPPORT", {"message", "ts"}: "1726656000.000100", {"message", "thread_ts"}: "1726655000.000050",
	} {
		if got := d[path[0]].(map[string]any)[path[1]]; got != want {
			t.Errorf("%s.%s = %q, want %q", path[0], path[1], got, want)
		}
	}
	if p := d["payload"].(map[string]any); p["response_url"] != "https://hooks.slack.com/actions/T0001/1/x" {
		t.Errorf("payload lacks the raw fields: %v", p)
	}
	if d["ignored"] != false {
		t.Errorf("ignored = %v", d["ignored"])
	}
}

func TestSlackIgnored(t *testing.T) {
	msg := func(ev string) []byte {
		return []byte(`{"type":"event_callback","team_id":"T0001","event_id":"Ev1","event":` + ev + `}`)
	}
	a := Slack{BotUserID: "U0BOT", AppID: "A0001"}
	for name, c := range map[string]struct {
		a    Slack
		body []byte
		want string
	}{
		"a person's message":    {a, msg(`{"type":"message","user":"U0456AGENT","channel":"C1","ts":"1.2"}`), ""},
		"the bot's message":     {a, msg(`{"type":"message","user":"U0BOT","channel":"C1","ts":"1.2"}`), slackIgnoredBot},
		"by the bot's bot_id":   {Slack{BotUserID: "B0BOT"}, msg(`{"type":"message","bot_id":"B0BOT","channel":"C1"}`), slackIgnoredBot},
		"the app's message":     {a, msg(`{"type":"message","bot_id":"B9","app_id":"A0001","channel":"C1"}`), slackIgnoredBot},
		"the app's bot_profile": {a, msg(`{"type":"message","bot_id":"B9","bot_profile":{"app_id":"A0001"},"channel":"C1"}`), slackIgnoredBot},
		"its edit":              {a, msg(`{"type":"message","subtype":"message_changed","channel":"C1","message":{"user":"U0BOT","text":"x"}}`), slackIgnoredBot},
		"another app's edit":    {a, msg(`{"type":"message","subtype":"message_changed","channel":"C1","message":{"bot_id":"B2","app_id":"A2"}}`), ""},
		"no guard configured":   {Slack{}, msg(`{"type":"message","user":"U0BOT","channel":"C1"}`), ""},
		"user not allowed":      {Slack{AllowUsers: []string{"U1"}}, formBody(slackClick), slackIgnoredUser},
		"user allowed":          {Slack{AllowUsers: []string{"U1", "U0456AGENT"}}, formBody(slackClick), ""},
		"channel not allowed":   {Slack{AllowChannels: []string{"C9"}}, formBody(slackClick), slackIgnoredChannel},
		"channel allowed":       {Slack{AllowChannels: []string{"C0123SUPPORT"}}, formBody(slackClick), ""},
		"reaction's channel":    {Slack{AllowChannels: []string{"C1"}}, msg(`{"type":"reaction_added","user":"U1","item":{"type":"message","channel":"C1","ts":"1.2"}}`), ""},
		"no user, list set":     {Slack{AllowUsers: []string{"U1"}}, msg(`{"type":"channel_created","channel":{"id":"C1"}}`), slackIgnoredUser},
	} {
		v, err := c.a.Decode(&router.Incoming{Source: "sl", Body: c.body, Headers: map[string]string{}})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if v.Ignored != c.want || v.Data()["ignored"] != (c.want != "") {
			t.Errorf("%s: ignored %q (view %v), want %q", name, v.Ignored, v.Data()["ignored"], c.want)
		}
	}
	v, _ := a.Decode(&router.Incoming{Body: msg(`{"type":"reaction_added","user":"U1","item":{"channel":"C1"}}`)})
	if v.Name != "slack.reaction_added" || v.ID != "Ev1" {
		t.Errorf("event_callback: name %q id %q", v.Name, v.ID)
	}
}

func TestSlackRefused(t *testing.T) {
	for name, body := range map[string]string{
		"no trigger_id":         string(formBody(`{"type":"block_actions","actions":[{"action_ts":"1"}]}`)),
		"no action":             string(formBody(`{"type":"block_actions","trigger_id":"t"}`)),
		"trigger_id an object":  string(formBody(`{"type":"block_actions","trigger_id":{"a":1},"actions":[{"action_ts":"1"}]}`)),
		"no event_id":           `{"type":"event_callback","event":{"type":"message"}}`,
		"no type":               `{"event_id":"Ev1"}`,
		"payload not an object": string(formBody(`[1]`)),
		"two payloads":          "payload=%7B%7D&payload=%7B%7D",
		"no payload":            "token=x",
		"not a form":            "%zz",
	} {
		if v, err := (Slack{}).Decode(&router.Incoming{Body: []byte(body)}); err == nil {
			t.Errorf("%s: decoded as %q %q, want an error (quarantine)", name, v.Name, v.ID)
		}
	}
}

func TestSlackHandshake(t *testing.T) {
	answer, ctype, ok := Slack{}.Handshake([]byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`), nil)
	if !ok || ctype != "application/json" || string(answer) != `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}` {
		t.Errorf("answer %q %q %v", answer, ctype, ok)
	}
	for _, body := range []string{`{"type":"event_callback","challenge":"x"}`, `{"type":"url_verification"}`, string(formBody(`{"type":"url_verification","challenge":"x"}`))} {
		if _, _, ok := (Slack{}).Handshake([]byte(body), nil); ok {
			t.Errorf("%s: answered as a handshake", body)
		}
	}
}

// FuzzSlackPayload feeds arbitrary bodies, as forms and as JSON, to the
// Slack adapter: it must never panic; what it accepts has a name, an id
// and a view that marshals; a handshake's answer is JSON.
func FuzzSlackPayload(f *testing.F) {
	f.Add(formBody(slackClick))
	f.Add([]byte(slackClick))
	f.Add([]byte(`{"type":"event_callback","event_id":"Ev1","event":{"type":"message","subtype":"message_changed","message":{"user":"U0BOT"}}}`))
	f.Add([]byte(`{"type":"url_verification","challenge":"c"}`))
	f.Add(formBody(`{"type":"view_submission","user":{"id":3}}`))
	f.Add([]byte("payload=%7B%22type%22%3A1%7D"))
	a := Slack{AllowUsers: []string{"U0456AGENT"}, AllowChannels: []string{"C0123SUPPORT"}, BotUserID: "U0BOT", AppID: "A0001"}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, b := range [][]byte{body, formBody(string(body))} {
			if answer, _, ok := a.Handshake(b, nil); ok && !json.Valid(answer) {
				t.Fatalf("handshake answer %q is not JSON", answer)
			}
			v, err := a.Decode(&router.Incoming{Source: "s", Body: b, Headers: map[string]string{}})
			if err != nil {
				continue
			}
			if v.ID == "" || len(v.Name) <= len("slack.") {
				t.Fatalf("accepted %q without id or name: %q %q", b, v.ID, v.Name)
			}
			if _, err := json.Marshal(v.Data()); err != nil {
				t.Fatalf("view does not marshal: %v", err)
			}
		}
	})
}
