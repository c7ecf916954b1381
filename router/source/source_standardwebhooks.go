package source

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

// Standard Webhooks signs the message id and timestamp with the body, so a
// replay under a new id or out of tolerance is refused.
func init() {
	Register(&Kind{
		Name:     "standard-webhooks",
		Keys:     []string{"secret", "secrets", "tolerance", "event", "id"},
		IDHeader: "webhook-id",
		Verifier: func(sc *config.SourceConfig, _ string) (verify.Verifier, error) {
			ss, err := SourceSecrets(sc)
			if err != nil {
				return nil, err
			}
			strs := make([]string, len(ss))
			for i, s := range ss {
				strs[i] = string(s)
			}
			return verify.NewStandardWebhooks(strs, time.Duration(sc.Tolerance))
		},
		Sign: func(sc *config.SourceConfig, _ string, body []byte) (http.Header, error) {
			id, now := fmt.Sprintf("msg_send%d", time.Now().UnixNano()), time.Now()
			sig, err := verify.SignStandardWebhooks(SigningSecret(sc), id, now, body)
			if err != nil {
				return nil, err
			}
			h := http.Header{}
			h.Set("webhook-id", id)
			h.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
			h.Set("webhook-signature", sig)
			return h, nil
		},
	})
}
