package source

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/hookroute/hookroute/internal/jsonview"
	"github.com/hookroute/hookroute/router"
)

// Slack decodes what a Slack app is sent: interactivity requests (a
// form with one field, payload, holding JSON; block_actions is a button
// click) and Events API requests (JSON). Its view is a map, like the
// generic view's, with the fields rules ask about in fixed places
// whichever kind of request carried them.
//
// Everything in the view is data: rules compare it, and nothing a user
// types is ever compiled as an expression.
type Slack struct {
	// AllowUsers and AllowChannels, when not empty, are the only users
	// and channels whose events may match rules.
	AllowUsers, AllowChannels []string
	// BotUserID and AppID are the app's own bot: its events match no
	// rule, so that a message the router posts cannot trigger it again.
	BotUserID, AppID string
}

// Why an event is ignored (router.View.Ignored).
const (
	slackIgnoredBot     = "the app's own bot (bot_user_id, app_id)"
	slackIgnoredUser    = "the user is not in allow_users"
	slackIgnoredChannel = "the channel is not in allow_channels"
)

// Env is the view's shape for compiling rules: every key the view always
// has, the nested ones as maps, so that action.id compiles.
func (Slack) Env() any {
	env := GenericEnv()
	env["action"] = map[string]any{"id": "", "value": ""}
	env["user"] = map[string]any{"id": "", "name": ""}
	env["team"] = map[string]any{"id": ""}
	env["channel"] = map[string]any{"id": ""}
	env["message"] = map[string]any{"ts": "", "thread_ts": "", "text": ""}
	env["ignored"] = false
	env["ignored_reason"] = ""
	return env
}

// Handshake answers Events API's url_verification with its challenge:
// Slack sends it, signed, when the request URL is saved, and expects the
// challenge back; it is not an event, so nothing is stored.
func (Slack) Handshake(body []byte, _ http.Header) ([]byte, string, bool) {
	if !looksJSON(body) {
		return nil, "", false
	}
	v, err := jsonview.Decode(body)
	m, ok := v.(map[string]any)
	if err != nil || !ok || m["type"] != "url_verification" {
		return nil, "", false
	}
	challenge, ok := m["challenge"].(string)
	if !ok {
		return nil, "", false
	}
	b := jsonview.AppendString([]byte(`{"challenge":`), challenge)
	return append(b, '}'), "application/json", true
}

// Decode builds the view of an interactivity payload or an Events API
// body. A body that is neither, or lacks what its id is made of, is an
// error, and so quarantined.
func (a Slack) Decode(in *router.Incoming) (*router.View, error) {
	var (
		payload map[string]any
		err     error
	)
	if looksJSON(in.Body) {
		payload, err = slackJSON(in.Body)
	} else {
		payload, err = slackForm(in.Body)
	}
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	var name, id string
	switch typ := str(payload, "type"); typ {
	case "event_callback":
		name, id, err = a.eventCallback(payload, data)
	case "":
		return nil, errors.New("slack: the payload has no type")
	default:
		// block_actions and the other interactivity payloads share their
		// shape: user, team, channel, message, trigger_id.
		name, id, err = a.interaction(typ, payload, data, in.Body)
	}
	if err != nil {
		return nil, err
	}
	data["source"], data["received_at"], data["headers"], data["payload"] = in.Source, in.ReceivedAt, in.Headers, payload
	data["event"], data["id"] = name, id
	v := router.NewView(name, id, data, data)
	v.Ignored = a.ignored(data)
	data["ignored"], data["ignored_reason"] = v.Ignored != "", v.Ignored
	return v, nil
}

// interaction fills data from an interactivity payload. Its id is the
// trigger_id and the action's action_ts: both change with every click and
// neither with a retry, which resends the same body.
func (a Slack) interaction(typ string, p map[string]any, data map[string]any, body []byte) (name, id string, err error) {
	user, team, channel, message := obj(p, "user"), obj(p, "team"), obj(p, "channel"), obj(p, "message")
	container := obj(p, "container")
	action := map[string]any{"id": "", "value": ""}
	var actionTS string
	if acts, ok := p["actions"].([]any); ok && len(acts) > 0 {
		first, _ := acts[0].(map[string]any)
		action["id"], action["value"] = str(first, "action_id"), str(first, "value")
		actionTS = str(first, "action_ts")
	}
	channelID := str(channel, "id")
	if channelID == "" {
		channelID = str(container, "channel_id")
	}
	data["action"] = action
	data["user"] = map[string]any{"id": str(user, "id"), "name": firstOf(str(user, "name"), str(user, "username"))}
	data["team"] = map[string]any{"id": firstOf(str(team, "id"), str(user, "team_id"))}
	data["channel"] = map[string]any{"id": channelID}
	data["message"] = map[string]any{
		"ts":        firstOf(str(message, "ts"), str(container, "message_ts")),
		"thread_ts": str(message, "thread_ts"),
		"text":      str(message, "text"),
	}
	trigger := str(p, "trigger_id")
	if typ == "block_actions" {
		if trigger == "" || actionTS == "" {
			return "", "", errors.New("slack: block_actions payload lacks trigger_id or actions[0].action_ts")
		}
		return "slack.block_actions", trigger + ":" + actionTS, nil
	}
	if trigger == "" { // nothing of its own to dedup by: its bytes
		trigger = BodyHash(body)
	}
	return "slack." + typ, trigger, nil
}

// eventCallback fills data from an Events API event_callback; its id is
// Slack's event_id, which a retry keeps.
func (a Slack) eventCallback(p map[string]any, data map[string]any) (name, id string, err error) {
	ev := obj(p, "event")
	typ := str(ev, "type")
	id = str(p, "event_id")
	if typ == "" || id == "" {
		return "", "", errors.New("slack: event_callback lacks event.type or event_id")
	}
	channel := str(ev, "channel") // a message's; a reaction's is its item's
	if channel == "" {
		channel = str(obj(ev, "item"), "channel")
	}
	data["action"] = map[string]any{"id": "", "value": ""}
	data["user"] = map[string]any{"id": str(ev, "user"), "name": ""}
	data["team"] = map[string]any{"id": firstOf(str(p, "team_id"), str(ev, "team"))}
	data["channel"] = map[string]any{"id": channel}
	data["message"] = map[string]any{"ts": str(ev, "ts"), "thread_ts": str(ev, "thread_ts"), "text": str(ev, "text")}
	return "slack." + typ, id, nil
}

// ignored says why the event in data must match no rule, or "". The bot
// guard is checked on the event and, for an edit (message_changed), on
// the edited message, whose author the outer event does not name.
func (a Slack) ignored(data map[string]any) string {
	p, _ := data["payload"].(map[string]any)
	ev := obj(p, "event")
	if a.bySelf(ev) || (str(ev, "subtype") == "message_changed" && a.bySelf(obj(ev, "message"))) {
		return slackIgnoredBot
	}
	user := str(data["user"].(map[string]any), "id")
	channel := str(data["channel"].(map[string]any), "id")
	// An event without a user or channel fails an allow list: an empty
	// id is no one the list allows.
	if len(a.AllowUsers) > 0 && !slices.Contains(a.AllowUsers, user) {
		return slackIgnoredUser
	}
	if len(a.AllowChannels) > 0 && !slices.Contains(a.AllowChannels, channel) {
		return slackIgnoredChannel
	}
	return ""
}

// bySelf reports whether the Slack event or message m was made by the
// configured bot: its user, its bot_id, or its app.
func (a Slack) bySelf(m map[string]any) bool {
	if m == nil {
		return false
	}
	if a.BotUserID != "" && (str(m, "user") == a.BotUserID || str(m, "bot_id") == a.BotUserID) {
		return true
	}
	return a.AppID != "" && (str(m, "app_id") == a.AppID || str(obj(m, "bot_profile"), "app_id") == a.AppID)
}

// slackMaxForm bounds the fields of an interactivity form: Slack sends
// one, and url.ParseQuery's own limit is far above what is ever needed.
const slackMaxForm = 16

// slackForm decodes an interactivity body: payload=<JSON object>.
func slackForm(body []byte) (map[string]any, error) {
	if n := bytes.Count(body, []byte("&")) + bytes.Count(body, []byte(";")); n >= slackMaxForm {
		return nil, errors.New("slack: the form has too many fields")
	}
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("slack: the body is neither JSON nor a form: %w", err)
	}
	if len(q["payload"]) != 1 {
		return nil, errors.New("slack: the form needs exactly one payload field")
	}
	return slackJSON([]byte(q.Get("payload")))
}

// slackJSON decodes a JSON object.
func slackJSON(b []byte) (map[string]any, error) {
	v, err := jsonview.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("slack: the payload is not a JSON object")
	}
	return m, nil
}

// looksJSON tells an Events API body (JSON) from an interactivity one (a
// form, which never starts with '{').
func looksJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// obj is m[key] when it is an object, else nil (which str reads as empty).
func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// str is m[key] when it is a string or a number, else "": an object where
// an id belongs must not become Go's printing of it.
func str(m map[string]any, key string) string {
	s, _ := ScalarString(m[key])
	return s
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
