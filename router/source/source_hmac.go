package source

import (
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

// hmac-sha256 is the scheme of many senders without one of their own: the
// MAC of the raw body in one header, hex or base64, maybe after a prefix.
func init() {
	Register(&Kind{
		Name:          "hmac-sha256",
		Keys:          []string{"secret", "secrets", "header", "encoding", "prefix", "event", "id"},
		SignsBodyOnly: true,
		CannotSign:    "send does not sign hmac-sha256 sources yet; use curl with your sender's header",
		Verifier: func(sc *config.SourceConfig, _ string) (verify.Verifier, error) {
			ss, err := SourceSecrets(sc)
			if err != nil {
				return nil, err
			}
			enc := sc.Encoding
			if enc == "" {
				enc = "hex"
			}
			return verify.NewHMAC(verify.HMACConfig{Header: sc.Header, Encoding: enc, Prefix: sc.Prefix, Secrets: ss})
		},
	})
}
