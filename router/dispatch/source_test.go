package dispatch

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/source"
)

// TestSourceKindsComplete checks that every registered kind has what the
// router asks a kind for, so a kind's file cannot leave out a piece that
// only a config using it would find missing.
func TestSourceKindsComplete(t *testing.T) {
	names := source.Kinds()
	for _, want := range []string{"github", "hmac-sha256", "none", "salesiq", "standard-webhooks"} {
		if !slices.Contains(names, want) {
			t.Errorf("kind %q is not registered (have %v)", want, names)
		}
	}
	fields := config.YAMLFields(reflect.TypeOf(config.SourceConfig{}))
	for _, name := range names {
		k, _ := source.Lookup(name)
		if k.Name != name {
			t.Errorf("%s: registered as %q", name, k.Name)
		}
		seen := map[string]bool{}
		for _, key := range k.Keys {
			if _, ok := fields[key]; !ok || key == "name" || key == "type" || key == "path" || seen[key] {
				t.Errorf("%s: key %q is not a SourceConfig key of its own, or is listed twice", name, key)
			}
			seen[key] = true
		}
		if k.Verifier == nil {
			t.Errorf("%s: no Verifier", name)
		}
		if (k.Sign == nil) == (k.CannotSign == "") {
			t.Errorf("%s: want either Sign or CannotSign", name)
		}
		if k.IDHeader != strings.ToLower(k.IDHeader) {
			t.Errorf("%s: IDHeader %q must be lower-case, as the view's headers are", name, k.IDHeader)
		}
		if k.Typed != nil && k.DefaultEvent != "" {
			t.Errorf("%s: a DefaultEvent is for the generic view, and the kind has a typed one", name)
		}
		var view source.Adapter = source.Generic{IDHeader: k.IDHeader}
		if k.Typed != nil {
			view = k.Typed(&config.SourceConfig{Type: name})
		} else if k.DefaultEvent != "" {
			p, err := expr.Compile(k.DefaultEvent, expr.Env(source.GenericEnv()))
			if err != nil {
				t.Errorf("%s: DefaultEvent: %v", name, err)
			}
			view = source.Generic{Event: p, IDHeader: k.IDHeader}
		}
		samples := trialSamples(k, &config.SourceConfig{Type: name})
		if len(samples) == 0 {
			t.Errorf("%s: no trial samples", name)
		}
		for _, s := range samples {
			ts := embedded(&rules.Source{Name: "s", Type: name, Kind: k}, s) // panics on a file that is not embedded
			v, err := view.Decode(&router.Incoming{Source: "s", Headers: map[string]string{}, Body: ts.Payload, ReceivedAt: time.Now()})
			if err != nil {
				t.Errorf("%s: sample %s does not decode: %v", name, s.File, err)
			} else if s.Event != "" && v.Name != s.Event {
				t.Errorf("%s: sample %s is event %q, labelled %q", name, s.File, v.Name, s.Event)
			}
		}
	}
}

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
sinks:
  - {name: out, type: fake}
rules:
  - {name: all, when: "true", to: [{sink: out, text: x}]}
`, map[string]string{"GH": "gh-secret-0123456789", "SW": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	body := []byte(`{"event":"conversation.rated","entity_id":"1"}`)
	for _, name := range []string{"siq", "gh", "sw", "open"} {
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
