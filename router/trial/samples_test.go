package trial

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"

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

// TestSamplesDecode checks that every embedded sample is an event its
// source type decodes, with the rating it is labelled with.
func TestSamplesDecode(t *testing.T) {
	for _, k := range append(source.SalesIQSamples, genericSample) {
		s := embedded(&rules.Source{Name: "s", Type: "salesiq"}, k)
		var v *router.View
		var err error
		if k.Event == "" {
			v, err = source.Generic{}.Decode(&router.Incoming{Body: s.Payload})
		} else {
			v, err = source.SalesIQ{}.Decode(&router.Incoming{Body: s.Payload})
		}
		if err != nil {
			t.Errorf("%s: %v", k.File, err)
			continue
		}
		if k.Event != "" && v.Name != k.Event {
			t.Errorf("%s: event %q, want %q", k.File, v.Name, k.Event)
		}
		for _, r := range []string{"sad", "neutral", "happy"} {
			if strings.HasSuffix(k.Label, "rated "+r) && v.Env.(*router.SalesIQEvent).Chat.Rating != r {
				t.Errorf("%s: rating %q, want %s", k.File, v.Env.(*router.SalesIQEvent).Chat.Rating, r)
			}
		}
	}
	if _, err := (source.SalesIQ{BareEvent: "conversation.rated"}).Decode(&router.Incoming{Body: embedded(&rules.Source{}, source.Sample{File: "salesiq-workflow-bare-rated.json"}).Payload}); err != nil {
		t.Errorf("workflow sample: %v", err)
	}
}
