package source

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

// GitHub signs the raw body (X-Hub-Signature-256) and nothing else; it
// names its events in X-GitHub-Event and ids them in X-GitHub-Delivery.
func init() {
	Register(&Kind{
		Name:          "github",
		Keys:          []string{"secret", "secrets", "event", "id"},
		DefaultEvent:  `headers["x-github-event"]`,
		IDHeader:      "x-github-delivery",
		SignsBodyOnly: true,
		Verifier: func(sc *config.SourceConfig, _ string) (verify.Verifier, error) {
			ss, err := SourceSecrets(sc)
			if err != nil {
				return nil, err
			}
			return verify.NewGitHub(ss)
		},
		Sign: func(sc *config.SourceConfig, _ string, body []byte) (http.Header, error) {
			h := http.Header{}
			h.Set("X-Hub-Signature-256", verify.SignGitHub([]byte(SigningSecret(sc)), body))
			h.Set("X-GitHub-Delivery", fmt.Sprintf("send-%d", time.Now().UnixNano()))
			return h, nil
		},
	})
}
