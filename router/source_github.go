package router

import "github.com/hookroute/hookroute/router/verify"

// GitHub signs the raw body (X-Hub-Signature-256) and names its events in
// X-GitHub-Event.
func init() {
	registerSource(&SourceKind{
		Name:         "github",
		Keys:         []string{"secret", "secrets", "event", "id"},
		DefaultEvent: `headers["x-github-event"]`,
		Verifier: func(sc *SourceConfig, _ string) (verify.Verifier, error) {
			ss, err := sourceSecrets(sc)
			if err != nil {
				return nil, err
			}
			return verify.NewGitHub(ss)
		},
	})
}
