package dispatch

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router/source"
)

func TestRegisterSourcePanics(t *testing.T) {
	for _, k := range []*source.Kind{{Name: "none"}, {}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", k.Name)
				}
			}()
			source.Register(k)
		}()
	}
	if k, _ := source.Lookup("none"); k.Verifier == nil {
		t.Error("the refused duplicate replaced the registered none kind")
	}
}

// TestSendSignsWhatItsKindVerifies signs with each kind's Sign, as
// hookroute send does, and verifies with the verifier the same config
// builds.
func TestSendSignsWhatItsKindVerifies(t *testing.T) {
	der, err := x509.MarshalPKCS8PrivateKey(testkit.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "private.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	rt, _ := mustLoad(t, `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUBKEY}"}]}
  - {name: gh, type: github, secret: "${OLD:-}", secrets: ["${GH}"]}
  - {name: sw, type: standard-webhooks, secret: "${SW}"}
  - {name: hm, type: hmac-sha256, secret: "${GH}", header: X-Signature}
  - {name: open, type: none}
  - {name: sl, type: slack, signing_secret: "${GH}"}
sinks:
  - {name: out, type: fake}
rules:
  - {name: all, when: "true", to: [{sink: out, text: x}]}
`, map[string]string{"GH": "gh-secret-0123456789", "SW": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	body := []byte(`{"event":"conversation.rated","entity_id":"1"}`)
	for _, name := range []string{"siq", "gh", "sw", "open", "sl"} {
		src, _ := rt.Source(name)
		h, err := src.SendHeaders(keyFile, body)
		if err != nil {
			t.Errorf("%s: sign: %v", name, err)
			continue
		}
		if err := src.Verifier.Verify(h, body, time.Now()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	siq, _ := rt.Source("siq")
	if _, err := siq.SendHeaders("", body); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("salesiq without --key: %v, want a request for it", err)
	}
	hm, _ := rt.Source("hm")
	if _, err := hm.SendHeaders("", body); err == nil || err.Error() != hm.Kind.CannotSign {
		t.Errorf("hmac-sha256: %v, want its CannotSign", err)
	}
}
