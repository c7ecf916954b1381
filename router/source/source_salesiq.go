package source

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

// Zoho SalesIQ signs the raw body with RSA-SHA256 and has a typed view
// (router.SalesIQEvent); event: names the event of bare-entity (workflow) bodies.
// Its ids are made of the body (see SalesIQ), so the body's hash
// would add no dedup key.
func init() {
	Register(&Kind{
		Name:     "salesiq",
		Keys:     []string{"public_keys", "event"},
		Verifier: salesiqVerifier,
		Typed:    func(sc *config.SourceConfig) Adapter { return SalesIQ{BareEvent: sc.Event} },
		Samples:  salesiqTrialSamples,
		Sign:     salesiqSign,
		Warn:     salesiqWarn,
	})
}

// salesiqSamples are in the order a conversation lives them. Entities
// follow the documented envelope and entity fields (see router/samples);
// ratings use the numeric wire form 1/2/3.
var SalesIQSamples = []Sample{
	{"conversation.created", "conversation created: a visitor starts a chat", "salesiq-conversation-created.json"},
	{"conversation.attender.updated", "conversation attender updated: an operator picks it up", "salesiq-conversation-attender-updated.json"},
	{"conversation.missed", "conversation missed", "salesiq-conversation-missed.json"},
	{"conversation.completed", "conversation completed", "salesiq-conversation-completed.json"},
	{"conversation.rated", "conversation rated sad", "salesiq-conversation-rated-sad.json"},
	{"conversation.rated", "conversation rated neutral", "salesiq-conversation-rated-neutral.json"},
	{"conversation.rated", "conversation rated happy", "salesiq-conversation-rated-happy.json"},
}

// salesiqSign signs with the private key in keyFile: a config holds only
// public keys.
func salesiqSign(_ *config.SourceConfig, keyFile string, body []byte) (http.Header, error) {
	if keyFile == "" {
		return nil, errors.New("a salesiq source needs --key PRIVATE.pem")
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	key, err := verify.ParseRSAPrivateKey(pem)
	if err != nil {
		return nil, err
	}
	sig, err := verify.SignSalesIQ(key, body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("x-siqsignature", sig)
	return h, nil
}

// salesiqTrialSamples adds, for a source that takes workflow webhooks, a
// bare entity named by its event:.
func salesiqTrialSamples(sc *config.SourceConfig) []Sample {
	if sc.Event == "" {
		return SalesIQSamples
	}
	return append(SalesIQSamples[:len(SalesIQSamples):len(SalesIQSamples)],
		Sample{sc.Event, "workflow webhook: bare entity (" + sc.Event + ")", "salesiq-workflow-bare-rated.json"})
}

// salesiqVerifier accepts a signature by any of the public keys, so a
// rotation lists two.
func salesiqVerifier(sc *config.SourceConfig, dir string) (verify.Verifier, error) {
	keys, err := salesiqKeys(sc, dir)
	if err != nil {
		return nil, err
	}
	return verify.NewSalesIQ(keys)
}

// demoKeySHA256 is the SHA-256 of the PKIX DER form of the demo SalesIQ
// public key in examples/keys: its private half is in the repository too.
const demoKeySHA256 = "5f4d3e2936b8a1b5ee33eaa58c2cf1caad8a140470986fa08eed056686f5437c"

// salesiqWarn warns of the demo key, whose private half is public; the
// example config runs with it, so it is a warning, not an error.
func salesiqWarn(sc *config.SourceConfig, dir string) []string {
	keys, _ := salesiqKeys(sc, dir)
	for _, pk := range keys {
		der, err := x509.MarshalPKIXPublicKey(pk)
		sum := sha256.Sum256(der)
		if err == nil && hex.EncodeToString(sum[:]) == demoKeySHA256 {
			return []string{"trusts the demo SalesIQ key of examples/keys, whose private half is public: anyone can sign events it accepts; give it the key SalesIQ gives you"}
		}
	}
	return nil
}

// salesiqKeys reads the source's public keys; key files are relative to
// dir.
func salesiqKeys(sc *config.SourceConfig, dir string) ([]*rsa.PublicKey, error) {
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
				return nil, &KeyError{"public_keys", fmt.Sprintf("public_keys[%d]: %v", j, err)}
			}
			data = b
		}
		if len(strings.TrimSpace(string(data))) == 0 {
			continue // an optional rotation slot left empty: ${KEY_2:-}
		}
		pk, err := verify.ParseRSAPublicKey(data)
		if err != nil {
			return nil, &KeyError{"public_keys", fmt.Sprintf("public_keys[%d]: %v", j, err)}
		}
		keys = append(keys, pk)
	}
	if len(keys) == 0 {
		return nil, &KeyError{"public_keys", "a salesiq source needs at least one public key"}
	}
	return keys, nil
}
