package source

import (
	"net/http"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

// The none kind accepts every request unverified, for senders that cannot
// sign; a config must name it, so a forgotten secret never turns into it.
func init() {
	Register(&Kind{
		Name: "none",
		Keys: []string{"event", "id"},
		Verifier: func(*config.SourceConfig, string) (verify.Verifier, error) {
			return verify.None(), nil
		},
		Sign: func(*config.SourceConfig, string, []byte) (http.Header, error) {
			return http.Header{}, nil
		},
	})
}
