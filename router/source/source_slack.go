package source

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

// Slack signs the timestamp with the body (X-Slack-Signature over
// v0:{timestamp}:{body}), so a replay is refused once five minutes old;
// its events are ided by what they carry (event_id, trigger_id and
// action_ts), which the signature covers.
func init() {
	Register(&Kind{
		Name:     "slack",
		Keys:     []string{"signing_secret", "allow_users", "allow_channels", "bot_user_id", "app_id"},
		Verifier: slackVerifier,
		Typed: func(sc *config.SourceConfig) Adapter {
			return Slack{AllowUsers: sc.AllowUsers, AllowChannels: sc.AllowChannels, BotUserID: sc.BotUserID, AppID: sc.AppID}
		},
		Samples: func(*config.SourceConfig) []Sample { return SlackSamples },
		Sign: func(sc *config.SourceConfig, _ string, body []byte) (http.Header, error) {
			now := time.Now()
			h := http.Header{}
			h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(now.Unix(), 10))
			h.Set("X-Slack-Signature", verify.SignSlack([]byte(sc.SigningSecret.Reveal()), now, body))
			return h, nil
		},
	})
}

// SlackSamples are the trial's Slack events. A trial's payload is JSON,
// so they are Events API bodies; a button click arrives as a form.
var SlackSamples = []Sample{
	{"slack.message", "message in a channel", "slack-message.json"},
}

// slackVerifier refuses a missing or empty signing secret, as every
// verifying kind does: an empty HMAC key is one anyone has.
func slackVerifier(sc *config.SourceConfig, _ string) (verify.Verifier, error) {
	if sc.SigningSecret == "" {
		return nil, &KeyError{"signing_secret", "a slack source needs a signing_secret (${NAME}); it is missing or empty"}
	}
	return verify.NewSlack([][]byte{[]byte(sc.SigningSecret.Reveal())})
}
