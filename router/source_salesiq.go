package router

import (
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookroute/hookroute/router/verify"
)

// Zoho SalesIQ signs the raw body with RSA-SHA256 and has a typed view
// (SalesIQEvent); event: names the event of bare-entity (workflow) bodies.
// Its ids are made of the body (see salesiqAdapter), so the body's hash
// would add no dedup key.
func init() {
	registerSource(&SourceKind{
		Name:     "salesiq",
		Keys:     []string{"public_keys", "event"},
		Verifier: salesiqVerifier,
		typed:    func(sc *SourceConfig) adapter { return salesiqAdapter{bareEvent: sc.Event} },
	})
}

// salesiqVerifier accepts a signature by any of the public keys, so a
// rotation lists two.
func salesiqVerifier(sc *SourceConfig, dir string) (verify.Verifier, error) {
	var keys []*rsa.PublicKey
	for j, k := range sc.PublicKeys {
		data := []byte(k.PEM.Reveal())
		if k.File != "" {
			f := k.File
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, &keyError{"public_keys", fmt.Sprintf("public_keys[%d]: %v", j, err)}
			}
			data = b
		}
		if len(strings.TrimSpace(string(data))) == 0 {
			continue // an optional rotation slot left empty: ${KEY_2:-}
		}
		pk, err := verify.ParseRSAPublicKey(data)
		if err != nil {
			return nil, &keyError{"public_keys", fmt.Sprintf("public_keys[%d]: %v", j, err)}
		}
		keys = append(keys, pk)
	}
	if len(keys) == 0 {
		return nil, &keyError{"public_keys", "a salesiq source needs at least one public key"}
	}
	return verify.NewSalesIQ(keys)
}
